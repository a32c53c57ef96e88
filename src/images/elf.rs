//! Is this file a static Linux executable for that architecture? wharf's images have no C library
//! and no loader, so a binary that names an interpreter (`PT_INTERP`) or a shared library
//! (`DT_NEEDED`, what `readelf -d` lists as NEEDED) would fail in the container with a bare
//! "no such file or directory". This checks the ELF headers before such an image is built.

use anyhow::{Context, bail};

use super::Arch;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

/// Ok when `bytes` are a 64-bit little-endian ELF executable for `arch` with no interpreter and
/// no needed library; else why not, and how to build one that is.
pub fn check_static(bytes: &[u8], arch: Arch) -> anyhow::Result<()> {
    let fix = format!(
        "build it with `scripts/build-release.sh` (cargo build --target {})",
        arch.rust_target()
    );
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        bail!("not an ELF executable; {fix}");
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        bail!("not a 64-bit little-endian ELF file; {fix}");
    }
    let machine = u16_at(bytes, 18)?;
    if machine != arch.elf_machine() {
        let found = match machine {
            62 => "x86_64 (amd64)".to_string(),
            183 => "aarch64 (arm64)".to_string(),
            m => format!("ELF machine {m}"),
        };
        bail!("built for {found}, not {}; {fix}", arch.as_str());
    }
    let phoff = u64_at(bytes, 32)? as usize;
    let phentsize = u16_at(bytes, 54)? as usize;
    let phnum = u16_at(bytes, 56)? as usize;
    if bytes.len() < phoff + phnum * phentsize {
        bail!("truncated ELF file (a partial copy?); {fix}");
    }
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(bytes, ph)? {
            PT_INTERP => bail!(
                "dynamically linked (it asks for a program interpreter); the image has no C library: {fix}"
            ),
            PT_DYNAMIC => {
                let offset = u64_at(bytes, ph + 8)? as usize;
                let size = u64_at(bytes, ph + 32)? as usize;
                let mut at = offset;
                while at + 16 <= offset + size {
                    match u64_at(bytes, at)? {
                        DT_NULL => break,
                        DT_NEEDED => bail!(
                            "dynamically linked (it needs a shared library); the image has no C library: {fix}"
                        ),
                        _ => at += 16,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn slice(bytes: &[u8], at: usize, n: usize) -> anyhow::Result<&[u8]> {
    bytes
        .get(at..at + n)
        .context("truncated ELF file (a partial copy?)")
}

fn u16_at(b: &[u8], at: usize) -> anyhow::Result<u16> {
    Ok(u16::from_le_bytes(slice(b, at, 2)?.try_into()?))
}

fn u32_at(b: &[u8], at: usize) -> anyhow::Result<u32> {
    Ok(u32::from_le_bytes(slice(b, at, 4)?.try_into()?))
}

fn u64_at(b: &[u8], at: usize) -> anyhow::Result<u64> {
    Ok(u64::from_le_bytes(slice(b, at, 8)?.try_into()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header for `machine` with the given program headers (type, offset, size),
    /// and the dynamic section's entries after them.
    fn elf(machine: u16, phdrs: &[(u32, u64, u64)], dynamic: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (kind, offset, size) in phdrs {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            b.extend(ph);
        }
        for (tag, val) in dynamic {
            b.extend(tag.to_le_bytes());
            b.extend(val.to_le_bytes());
        }
        b
    }

    #[test]
    fn static_binaries_pass_and_every_other_kind_is_named() {
        let dyn_at = 64 + 56;
        let cases: Vec<(&str, Vec<u8>, Arch, Option<&str>)> = vec![
            ("static", elf(62, &[(1, 0, 0)], &[]), Arch::Amd64, None),
            (
                "static-pie",
                elf(183, &[(PT_DYNAMIC, dyn_at, 32)], &[(5, 0), (0, 0)]),
                Arch::Arm64,
                None,
            ),
            (
                "needs libc",
                elf(62, &[(PT_DYNAMIC, dyn_at, 32)], &[(DT_NEEDED, 1), (0, 0)]),
                Arch::Amd64,
                Some("needs a shared library"),
            ),
            (
                "interpreter",
                elf(62, &[(PT_INTERP, 0, 0)], &[]),
                Arch::Amd64,
                Some("program interpreter"),
            ),
            (
                "wrong arch",
                elf(62, &[], &[]),
                Arch::Arm64,
                Some("built for x86_64 (amd64), not arm64"),
            ),
            (
                "script",
                b"#!/bin/sh\necho hi\n".to_vec(),
                Arch::Amd64,
                Some("not an ELF"),
            ),
            (
                "truncated",
                elf(62, &[(1, 0, 0)], &[])[..80].to_vec(),
                Arch::Amd64,
                Some("truncated"),
            ),
        ];
        for (name, bytes, arch, want) in cases {
            let got = check_static(&bytes, arch);
            match want {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(w) => {
                    let msg = format!("{:#}", got.expect_err(name));
                    assert!(msg.contains(w), "{name}: {msg}");
                    assert!(msg.contains("scripts/build-release.sh"), "{name}: {msg}");
                }
            }
        }
    }
}
