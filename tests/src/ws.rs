//! WebSocket frames as a client writes them (masked), byte for byte, for tests that speak the
//! protocol by hand: split, oversized or malformed on purpose.

/// The mask every test frame uses.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame with `opcode` and `payload`.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_header(fin, opcode, payload.len() as u64);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A masked client frame header declaring `len` payload bytes, without the payload.
pub fn client_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_the_short_middle_and_long_forms() {
        assert_eq!(client_header(true, 1, 125)[1], 0x80 | 125);
        assert_eq!(&client_header(true, 1, 126)[1..4], &[0x80 | 126, 0, 126]);
        assert_eq!(client_header(false, 2, 1 << 20)[..2], [0x02, 0x80 | 127]);
        let frame = client_frame(true, 1, b"hi");
        assert_eq!(frame[6] ^ MASK[0], b'h');
    }
}
