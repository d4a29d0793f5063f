//! fsck placeholder
