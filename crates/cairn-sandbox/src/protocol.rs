//! Frames between the host and the kernel driver: a 4-byte big-endian
//! length, then that many bytes of JSON.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, Result};

/// The largest frame accepted from a kernel (a large figure or table).
const MAX_FRAME: usize = 64 * 1024 * 1024;

pub(crate) async fn write(out: &mut (impl AsyncWrite + Unpin), message: &Value) -> Result<()> {
    let bytes = serde_json::to_vec(message).map_err(|e| Error::Protocol(e.to_string()))?;
    let length = u32::try_from(bytes.len()).map_err(|_| Error::Protocol("frame too large".into()))?;
    out.write_all(&length.to_be_bytes()).await?;
    out.write_all(&bytes).await?;
    out.flush().await?;
    Ok(())
}

/// The next frame, or `None` when the kernel closed its end.
pub(crate) async fn read(input: &mut (impl AsyncRead + Unpin)) -> Result<Option<Value>> {
    let mut header = [0u8; 4];
    match input.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_be_bytes(header) as usize;
    if length > MAX_FRAME {
        return Err(Error::Protocol(format!("a frame of {length} bytes")));
    }
    let mut body = vec![0u8; length];
    input.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map(Some).map_err(|e| Error::Protocol(e.to_string()))
}
