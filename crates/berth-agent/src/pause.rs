//! berth's own pause image: a static binary (pause/pause.c, built by
//! build.rs and embedded here) imported into Docker as `berth/pause:{hash}`.
//! An awsvpc task's namespace is held by a container of it, so berth runs
//! air-gapped: nothing is pulled that the user did not name.
use sha2::{Digest, Sha256};

/// The pause binary, built static for this host at compile time.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

pub const REPOSITORY: &str = "berth/pause";

/// The image's tag: the binary's hash, so a changed binary is a new image.
pub fn tag() -> String {
    hex_prefix(&Sha256::digest(BINARY), 12)
}

/// `berth/pause:{tag}`.
pub fn image() -> String {
    format!("{REPOSITORY}:{}", tag())
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(n)
        .collect()
}

/// A root filesystem holding only `/pause`, as a tar archive for `docker import`.
pub fn rootfs_tar() -> Vec<u8> {
    let mut out = header("pause", BINARY.len(), 0o755).to_vec();
    out.extend_from_slice(BINARY);
    out.resize(out.len().div_ceil(512) * 512, 0);
    // Two zero blocks end the archive.
    out.resize(out.len() + 1024, 0);
    out
}

/// A ustar header for one regular file owned by root.
fn header(name: &str, size: usize, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    let mut put =
        |offset: usize, field: &[u8]| h[offset..offset + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, b"00000000000\0");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    // The checksum counts its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_a_static_elf_and_the_tag_follows_it() {
        assert_eq!(&BINARY[..4], b"\x7fELF");
        assert_eq!(tag().len(), 12);
        assert!(image().starts_with("berth/pause:"));
    }

    #[test]
    fn the_rootfs_is_a_ustar_archive_holding_only_pause() {
        let tar = rootfs_tar();
        assert_eq!(tar.len() % 512, 0);
        assert_eq!(&tar[..5], b"pause");
        assert_eq!(&tar[257..262], b"ustar");
        let size = usize::from_str_radix(std::str::from_utf8(&tar[124..135]).unwrap(), 8).unwrap();
        assert_eq!(size, BINARY.len());
        assert_eq!(&tar[512..512 + size], BINARY);
        // The header's checksum: its bytes summed with the checksum field as spaces.
        let mut h = tar[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| u32::from(*b)).sum::<u32>());
        // Nothing after the file but the two zero blocks.
        let end = 512 + size.div_ceil(512) * 512;
        assert_eq!(tar.len(), end + 1024);
        assert!(tar[end..].iter().all(|b| *b == 0));
    }
}
