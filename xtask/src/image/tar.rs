//! A deterministic tar writer (POSIX ustar): every entry owned by 0:0 with no user or group
//! name, one fixed mtime, and modes chosen by the caller, so the same inputs always give the
//! same bytes and therefore the same layer digest.

use std::io::{self, Read, Write};

use anyhow::{Context as _, bail};

const BLOCK: usize = 512;

/// Writes tar entries in the order they are added.
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer whose entries all carry `mtime` (seconds since the epoch).
    pub fn new(out: W, mtime: u64) -> Self {
        Self { out, mtime }
    }

    /// Adds a directory; `path` without a trailing slash.
    pub fn dir(&mut self, path: &str, mode: u32) -> anyhow::Result<()> {
        let header = self.header(&format!("{path}/"), mode, 0, b'5')?;
        self.out.write_all(&header)?;
        Ok(())
    }

    /// Adds a regular file of `size` bytes read from `content`.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut impl Read,
    ) -> anyhow::Result<()> {
        let header = self.header(path, mode, size, b'0')?;
        self.out.write_all(&header)?;
        let copied = io::copy(&mut content.take(size), &mut self.out)
            .with_context(|| format!("writing {path} into the tarball"))?;
        if copied != size {
            bail!("{path}: expected {size} bytes, read {copied}");
        }
        let padding = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.out.write_all(&[0; BLOCK][..padding])?;
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the underlying writer.
    pub fn finish(mut self) -> anyhow::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&self, path: &str, mode: u32, size: u64, kind: u8) -> anyhow::Result<[u8; BLOCK]> {
        if path.len() > 100 || path.starts_with('/') {
            bail!("tar entry name {path:?} must be relative and at most 100 bytes");
        }
        let mut h = [0u8; BLOCK];
        h[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0); // uid
        octal(&mut h[116..124], 0); // gid
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], self.mtime);
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field read as spaces.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        Ok(h)
    }
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut tar = TarWriter::new(Vec::new(), 0);
        tar.dir("usr", 0o755).unwrap();
        tar.file("usr/hello", 0o755, 5, &mut &b"hello"[..]).unwrap();
        tar.finish().unwrap()
    }

    #[test]
    fn entries_are_whole_blocks_with_an_end_marker() {
        let bytes = archive();
        // dir header, file header, one data block, two end blocks
        assert_eq!(bytes.len(), 5 * BLOCK);
        assert_eq!(&bytes[BLOCK * 2..BLOCK * 2 + 5], b"hello");
        assert!(bytes[BLOCK * 3..].iter().all(|&b| b == 0));
    }

    #[test]
    fn header_checksum_matches_its_bytes() {
        let bytes = archive();
        let header = &bytes[BLOCK..2 * BLOCK];
        let stored =
            u32::from_str_radix(std::str::from_utf8(&header[148..154]).unwrap().trim(), 8).unwrap();
        let computed: u32 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(b)
                }
            })
            .sum();
        assert_eq!(stored, computed);
    }

    #[test]
    fn same_inputs_give_the_same_bytes() {
        assert_eq!(archive(), archive());
    }

    #[test]
    fn owner_mode_and_mtime_are_fixed() {
        let bytes = archive();
        let header = &bytes[BLOCK..2 * BLOCK];
        assert_eq!(&header[100..108], b"0000755\0");
        assert_eq!(&header[108..116], b"0000000\0");
        assert_eq!(&header[116..124], b"0000000\0");
        assert_eq!(&header[124..136], b"00000000005\0");
        assert_eq!(&header[136..148], b"00000000000\0");
        assert_eq!(header[156], b'0');
    }

    #[test]
    fn rejects_names_ustar_cannot_hold() {
        let mut tar = TarWriter::new(Vec::new(), 0);
        assert!(tar.dir(&"x".repeat(101), 0o755).is_err());
        assert!(tar.dir("/abs", 0o755).is_err());
    }
}
