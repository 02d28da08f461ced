//! A tiny PNG writer (stored deflate blocks) and a PNG checker (signature,
//! every chunk's CRC, IHDR first, IDAT present, IEND last), so the tests can
//! send a real photo and check an output is a well-formed PNG of the right
//! size, and can make hostile PNGs (a header declaring a huge image).

/// The CRC-32 of `parts` joined: a PNG chunk's checksum.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[&kind, data]).to_be_bytes());
}

/// An RGB PNG with a gradient.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            let r = u8::try_from(x * 255 / w.max(1)).unwrap();
            let g = u8::try_from(y * 255 / h.max(1)).unwrap();
            raw.extend_from_slice(&[r, g, 128]);
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap();
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    assemble(w, h, 2, &z)
}

/// Signature, `IHDR` (8 bits per sample, colour type `colour`), one
/// `IDAT` holding `data`, `IEND`.
fn assemble(w: u32, h: u32, colour: u8, data: &[u8]) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, colour, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, *b"IHDR", &ihdr);
    chunk(&mut out, *b"IDAT", data);
    chunk(&mut out, *b"IEND", &[]);
    out
}

/// Checks a PNG's structure and returns its size.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut at = 8;
    let mut kinds = Vec::new();
    let mut size = None;
    while at < bytes.len() {
        let len =
            usize::try_from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())).unwrap();
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
        assert_eq!(
            crc,
            crc32(&[kind, data]),
            "bad CRC in {}",
            String::from_utf8_lossy(kind)
        );
        if kind == b"IHDR" {
            size = Some((
                u32::from_be_bytes(data[0..4].try_into().unwrap()),
                u32::from_be_bytes(data[4..8].try_into().unwrap()),
            ));
        }
        kinds.push(String::from_utf8_lossy(kind).into_owned());
        at += 12 + len;
    }
    assert_eq!(at, bytes.len(), "trailing bytes");
    assert_eq!(kinds.first().map(String::as_str), Some("IHDR"));
    assert_eq!(kinds.last().map(String::as_str), Some("IEND"));
    assert!(kinds.iter().any(|k| k == "IDAT"), "no image data");
    size.unwrap()
}

/// A PNG whose header declares a `w`×`h` 8-bit grayscale image, followed by
/// a tiny (wrong-sized) image-data chunk: an image bomb as far as any
/// reader of its header can tell, in a few dozen bytes.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    // A zlib stream of one empty stored block.
    let tiny = [
        0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
    ];
    assemble(w, h, 0, &tiny)
}
