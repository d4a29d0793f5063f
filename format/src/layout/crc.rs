//! CRC-32C (Castagnoli), table driven (slice-by-8), used for every rdaxfs
//! checksum. Directory blocks (4 KiB) are checksummed on every change and
//! every lookup, so this is on the hot path of the namespace operations:
//! eight bytes per step instead of one.

/// Reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `TABLES[0]` is the classic byte table; `TABLES[k][b]` is the CRC of
/// byte `b` followed by `k` zero bytes, so eight lookups fold eight bytes.
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Continues a CRC-32C: `crc32c_update(crc32c(a), b) == crc32c(a ++ b)`.
/// Start with `0` for a fresh checksum.
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut c = !crc;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ c;
        // Every index is a `u8`, so always inside its 256-entry table.
        c = t[7][lo as u8 as usize]
            ^ t[6][(lo >> 8) as u8 as usize]
            ^ t[5][(lo >> 16) as u8 as usize]
            ^ t[4][(lo >> 24) as u8 as usize]
            ^ t[3][w[4] as usize]
            ^ t[2][w[5] as usize]
            ^ t[1][w[6] as usize]
            ^ t[0][w[7] as usize];
    }
    for &b in words.remainder() {
        c = t[0][(c ^ u32::from(b)) as u8 as usize] ^ (c >> 8);
    }
    !c
}

/// `a * b` modulo the CRC-32C polynomial, in the reflected bit order the
/// tables use (bit 31 is x^0). `a` must not be 0.
const fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// `X2N[k]` is x^(2^k) modulo the polynomial.
const fn make_x2n() -> [u32; 32] {
    let mut t = [0u32; 32];
    let mut p = 1u32 << 30; // x^1
    t[0] = p;
    let mut k = 1;
    while k < 32 {
        p = multmodp(p, p);
        t[k] = p;
        k += 1;
    }
    t
}

static X2N: [u32; 32] = make_x2n();

/// x^(8 * n) modulo the polynomial: appending `n` zero bytes.
fn x8nmodp(mut n: u64) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut k = 3;
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(X2N[k & 31], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32C of a message after bytes inside it changed, from the old
/// CRC and the change alone (CRC is linear over messages of one length):
/// `old` and `new` are the bytes at the same place, followed by `after`
/// unchanged bytes up to the message's end. Costs the changed bytes plus
/// a few dozen steps, not the whole message.
pub fn crc32c_patch(crc: u32, old: &[u8], new: &[u8], after: u64) -> u32 {
    let t = &TABLES[0];
    // The register over (old ^ new), from 0 and without the final xor:
    // leading zero bytes leave a zero register unchanged.
    let mut c = 0u32;
    for (&a, &b) in old.iter().zip(new) {
        c = t[(c ^ u32::from(a ^ b)) as u8 as usize] ^ (c >> 8);
    }
    if c == 0 {
        return crc;
    }
    crc ^ multmodp(x8nmodp(after), c)
}

/// CRC-32C of `data` (the iSCSI / ext4 / btrfs checksum).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_update(0, data)
}

const _: () = assert!(make_tables()[0][1] == 0xF26B_8303);

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition the sliced tables must agree with.
    fn reference(crc: u32, data: &[u8]) -> u32 {
        let mut c = !crc;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn sliced_matches_bitwise_at_every_length_and_offset() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let data: [u8; 300] = core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        });
        for start in 0..9 {
            for end in start..data.len() {
                let d = &data[start..end];
                assert_eq!(crc32c(d), reference(0, d), "{start}..{end}");
                assert_eq!(crc32c_update(0xdead_beef, d), reference(0xdead_beef, d));
            }
        }
        // The standard check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn patch_matches_recomputing() {
        let mut x = 0x0bad_cafe_1234_5678u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut msg = [0u8; 4092];
        msg.iter_mut().for_each(|b| *b = rnd() as u8);
        let mut crc = crc32c(&msg);
        for _ in 0..300 {
            let len = (rnd() % 300) as usize;
            let at = (rnd() as usize) % (msg.len() - len + 1);
            let mut old = [0u8; 300];
            old[..len].copy_from_slice(&msg[at..at + len]);
            let mut new = old;
            for b in &mut new[..len] {
                if rnd() % 3 != 0 {
                    *b = rnd() as u8;
                }
            }
            msg[at..at + len].copy_from_slice(&new[..len]);
            let after = (msg.len() - at - len) as u64;
            crc = crc32c_patch(crc, &old[..len], &new[..len], after);
            assert_eq!(crc, crc32c(&msg), "change of {len} bytes at {at}");
        }
    }
}
