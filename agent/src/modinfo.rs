//! Read the `.modinfo` section of a kernel module (an ELF64 relocatable object) without loading it,
//! so the agent can compare the module's vermagic with the running kernel before asking the kernel.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModinfoError {
    #[error("not an ELF file")]
    NotElf,
    #[error("only 64-bit little-endian kernel modules are supported")]
    UnsupportedElf,
    #[error("truncated or corrupt ELF: {0}")]
    Corrupt(&'static str),
    #[error("the module has no .modinfo section")]
    NoModinfo,
}

/// The `key=value` entries of a module's `.modinfo` section (a key may repeat, e.g. `alias`;
/// the first value is kept, which is enough for `name` and `vermagic`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modinfo {
    entries: BTreeMap<String, String>,
}

impl Modinfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The kernel release the module was built for: the first word of `vermagic`.
    pub fn vermagic_release(&self) -> Option<&str> {
        self.get("vermagic")?.split_whitespace().next()
    }
}

fn read_u16(data: &[u8], at: usize) -> Result<u16, ModinfoError> {
    let bytes = data
        .get(at..at + 2)
        .ok_or(ModinfoError::Corrupt("header"))?;
    Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, ModinfoError> {
    let bytes = data
        .get(at..at + 4)
        .ok_or(ModinfoError::Corrupt("header"))?;
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(buf))
}

fn read_u64(data: &[u8], at: usize) -> Result<u64, ModinfoError> {
    let bytes = data
        .get(at..at + 8)
        .ok_or(ModinfoError::Corrupt("header"))?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(buf))
}

fn to_usize(v: u64, what: &'static str) -> Result<usize, ModinfoError> {
    usize::try_from(v).map_err(|_| ModinfoError::Corrupt(what))
}

struct Section {
    name_offset: usize,
    offset: usize,
    size: usize,
}

fn section(
    data: &[u8],
    shoff: usize,
    shentsize: usize,
    index: usize,
) -> Result<Section, ModinfoError> {
    let base = index
        .checked_mul(shentsize)
        .and_then(|o| o.checked_add(shoff))
        .ok_or(ModinfoError::Corrupt("section table"))?;
    Ok(Section {
        name_offset: read_u32(data, base)? as usize,
        offset: to_usize(read_u64(data, base + 24)?, "section offset")?,
        size: to_usize(read_u64(data, base + 32)?, "section size")?,
    })
}

fn section_bytes<'a>(data: &'a [u8], s: &Section) -> Result<&'a [u8], ModinfoError> {
    let end = s
        .offset
        .checked_add(s.size)
        .ok_or(ModinfoError::Corrupt("section bounds"))?;
    data.get(s.offset..end)
        .ok_or(ModinfoError::Corrupt("section bounds"))
}

/// Parse the `.modinfo` section out of the bytes of a `.ko` file.
pub fn parse_modinfo(data: &[u8]) -> Result<Modinfo, ModinfoError> {
    if data.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ModinfoError::NotElf);
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little-endian): what x86_64 and arm64 modules are.
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err(ModinfoError::UnsupportedElf);
    }
    let shoff = to_usize(read_u64(data, 0x28)?, "section table offset")?;
    let shentsize = read_u16(data, 0x3a)? as usize;
    let shnum = read_u16(data, 0x3c)? as usize;
    let shstrndx = read_u16(data, 0x3e)? as usize;
    if shentsize < 40 || shstrndx >= shnum {
        return Err(ModinfoError::Corrupt("section header sizes"));
    }
    let names = section_bytes(data, &section(data, shoff, shentsize, shstrndx)?)?;
    for index in 0..shnum {
        let s = section(data, shoff, shentsize, index)?;
        let name = names
            .get(s.name_offset..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .ok_or(ModinfoError::Corrupt("section name"))?;
        if name == b".modinfo" {
            return Ok(parse_entries(section_bytes(data, &s)?));
        }
    }
    Err(ModinfoError::NoModinfo)
}

fn parse_entries(bytes: &[u8]) -> Modinfo {
    let mut entries = BTreeMap::new();
    for raw in bytes.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(raw);
        if let Some((key, value)) = entry.split_once('=') {
            entries
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    Modinfo { entries }
}

/// Build a minimal ELF64 object holding the given sections; test helper shared with loader tests.
#[cfg(test)]
pub(crate) fn fake_elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut name_offsets = Vec::new();
    for (name, _) in sections.iter().copied().chain([(".shstrtab", &b""[..])]) {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    let mut body = vec![0u8; 64];
    let mut placed = Vec::new();
    for (_, content) in sections {
        placed.push((body.len() as u64, content.len() as u64));
        body.extend_from_slice(content);
    }
    placed.push((body.len() as u64, shstrtab.len() as u64));
    body.extend_from_slice(&shstrtab);
    let shoff = body.len() as u64;
    // Section 0 is the null section.
    body.extend_from_slice(&[0u8; 64]);
    for (i, (offset, size)) in placed.iter().enumerate() {
        let mut sh = [0u8; 64];
        sh[0..4].copy_from_slice(&name_offsets[i].to_le_bytes());
        sh[4..8].copy_from_slice(&1u32.to_le_bytes());
        sh[24..32].copy_from_slice(&offset.to_le_bytes());
        sh[32..40].copy_from_slice(&size.to_le_bytes());
        body.extend_from_slice(&sh);
    }
    let shnum = (placed.len() + 1) as u16;
    body[0..4].copy_from_slice(b"\x7fELF");
    body[4] = 2;
    body[5] = 1;
    body[6] = 1;
    body[0x10..0x12].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    body[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    body[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    body[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    body[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
    body[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vermagic_and_name() {
        let elf = fake_elf(&[
            (".text", b"\x90\x90"),
            (
                ".modinfo",
                b"license=GPL\0name=stressmix\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0",
            ),
        ]);
        let info = parse_modinfo(&elf).expect("parses");
        assert_eq!(info.get("name"), Some("stressmix"));
        assert_eq!(info.get("license"), Some("GPL"));
        assert_eq!(info.vermagic_release(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert_eq!(parse_modinfo(b"hello"), Err(ModinfoError::NotElf));
        assert_eq!(
            parse_modinfo(&fake_elf(&[(".text", b"x")])),
            Err(ModinfoError::NoModinfo)
        );
        let mut elf32 = fake_elf(&[(".modinfo", b"vermagic=1 \0")]);
        elf32[4] = 1;
        assert_eq!(parse_modinfo(&elf32), Err(ModinfoError::UnsupportedElf));
        let elf = fake_elf(&[(".modinfo", b"vermagic=1 \0")]);
        assert!(matches!(
            parse_modinfo(&elf[..elf.len() - 40]),
            Err(ModinfoError::Corrupt(_))
        ));
    }
}
