//! A WebSocket client by hand, byte for byte, for tests and attacks that speak the protocol
//! badly on purpose: frames split, oversized or malformed, and sockets with tiny receive
//! buffers that stop reading.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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

/// A TCP connection to `addr` (`host:port`) whose receive buffer is `rcvbuf` bytes (0: the
/// kernel's default).
pub async fn connect(addr: &str, rcvbuf: u32) -> anyhow::Result<TcpStream> {
    let to = tokio::net::lookup_host(addr)
        .await?
        .next()
        .with_context(|| format!("{addr} does not resolve"))?;
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if rcvbuf > 0 {
        socket.set_recv_buffer_size(rcvbuf)?;
    }
    Ok(socket.connect(to).await?)
}

/// Opens a WebSocket on `path` by hand, returning the stream right after the 101 head.
pub async fn open(addr: &str, path: &str, rcvbuf: u32) -> anyhow::Result<TcpStream> {
    let mut stream = connect(addr, rcvbuf).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(Duration::from_secs(10), stream.read_u8())
            .await
            .context("no upgrade answer within 10 s")??;
        head.push(byte);
    }
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 101"),
        "upgrade refused: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(stream)
}

/// A frame from the server (unmasked).
#[derive(Debug)]
pub struct ServerFrame {
    /// The opcode (1 text, 8 close, 9 ping, 10 pong…).
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// Code and reason of a close frame.
    pub fn close(&self) -> Option<(u16, String)> {
        (self.opcode == 8 && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }

    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// The next server frame, or `None` at end of stream, error or `timeout`.
pub async fn next_frame<R: AsyncRead + Unpin>(r: &mut R, timeout: Duration) -> Option<ServerFrame> {
    tokio::time::timeout(timeout, async {
        let mut head = [0u8; 2];
        r.read_exact(&mut head).await.ok()?;
        let len = match head[1] & 0x7f {
            126 => u64::from(r.read_u16().await.ok()?),
            127 => r.read_u64().await.ok()?,
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(len).ok()?];
        r.read_exact(&mut payload).await.ok()?;
        Some(ServerFrame {
            opcode: head[0] & 0x0f,
            payload,
        })
    })
    .await
    .ok()
    .flatten()
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
