//! `ogpu bench blobs`: how fast blobs move, against the machine's own loopback TCP in the
//! same run. A 2-validator devnet serves the API from both validators; the bench uploads
//! a blob to the first, downloads it from the first, then downloads it from the second,
//! which lacks it and fetches it from the first over libp2p while streaming it on. That
//! fetch goes at most at the rate one peer may ask of another (`peer_bytes_per_s`, 64 MiB/s
//! after a 128 MiB burst by default), which bounds it on a fast link. For private data it
//! also seals and opens the same bytes (`ogpu_core::sealed`) against blake3 hashing them,
//! and uploads the sealed blob against the plain upload.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ogpu_client::{Client, transfer};
use ogpu_core::sealed::{self, ContentKey};
use rand_core::OsRng;
use serde_json::json;

use crate::bench::median;

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes that do not compress and cost nothing to make: a xorshift stream.
fn payload(size: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / MIB / elapsed.as_secs_f64()
}

/// The baseline: the same bytes written to a loopback TCP socket and read on the other
/// end by another thread, in 64 KiB writes and reads, nothing else done with them.
fn raw_tcp(bytes: &[u8]) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let started = Instant::now();
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        std::io::copy(&mut stream, &mut std::io::sink())
    });
    let mut stream = TcpStream::connect(address)?;
    for chunk in bytes.chunks(64 * 1024) {
        stream.write_all(chunk)?;
    }
    drop(stream);
    let received = reader.join().map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    ensure!(received == bytes.len() as u64, "loopback delivered {received} of {} bytes", bytes.len());
    Ok(mib_per_s(bytes.len(), started.elapsed()))
}

fn wait_until_up(client: &Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status().map_or(true, |s| s.finalized_height < 1) {
        ensure!(Instant::now() < deadline, "the API at {} did not answer within a minute", client.base());
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Rounds of each measurement; each figure is their median, which a shared, noisy
/// machine needs.
const ROUNDS: u8 = 3;

fn timed(bytes: usize, run: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    run()?;
    Ok(mib_per_s(bytes, started.elapsed()))
}

fn measure(first: &Client, second: &Client, bytes: &mut [u8]) -> Result<serde_json::Value> {
    wait_until_up(first)?;
    wait_until_up(second)?;
    let len = bytes.len();
    let (mut raw, mut upload, mut download, mut p2p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut hashing, mut sealing, mut opening, mut sealed_upload) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let key = ContentKey::generate(&mut OsRng);
    for round in 0..ROUNDS {
        // A different blob each round, so the second validator never has it already.
        bytes[0] = round;
        raw.push(raw_tcp(bytes)?);
        hashing.push(timed(len, || {
            std::hint::black_box(blake3::hash(bytes));
            Ok(())
        })?);
        let mut sealed = Vec::with_capacity(len + len / 1000 + 64);
        sealing.push(timed(len, || {
            sealed::seal(&key, &mut OsRng, &mut &*bytes, &mut sealed)?;
            Ok(())
        })?);
        opening.push(timed(len, || {
            let opened = sealed::open(&key, &mut &sealed[..], &mut std::io::sink())?;
            ensure!(opened == len as u64, "opened {opened} of {len} bytes");
            Ok(())
        })?);
        sealed_upload.push(timed(len, || sealed_upload_of(first, &key, bytes))?);
        let mut stored = None;
        upload.push(timed(len, || {
            stored = Some(first.upload_blob(&*bytes).context("uploading to the first validator")?);
            Ok(())
        })?);
        let (hash, size) = stored.context("nothing was stored")?;
        ensure!(size == len as u64, "the node stored {size} of {len} bytes");
        download.push(timed(len, || {
            first.download_blob(&hash, &mut std::io::sink()).context("downloading from the first validator")?;
            Ok(())
        })?);
        p2p.push(timed(len, || {
            second.download_blob(&hash, &mut std::io::sink()).context("downloading through the second validator")?;
            Ok(())
        })?);
    }
    let (raw, upload, download, p2p) = (median(raw), median(upload), median(download), median(p2p));
    let (hashing, sealing, opening, sealed_upload) =
        (median(hashing), median(sealing), median(opening), median(sealed_upload));

    let ratio = |speed: f64| (speed / raw * 1_000.0).round() / 1_000.0;
    let round = |speed: f64| speed.round();
    Ok(json!({
        "bytes": len,
        "rounds": ROUNDS,
        "raw_tcp_mib_s": round(raw),
        "api_upload_mib_s": round(upload),
        "api_download_mib_s": round(download),
        "p2p_mib_s": round(p2p),
        "blobs_api_upload_ratio": ratio(upload),
        "blobs_api_download_ratio": ratio(download),
        "blobs_p2p_ratio": ratio(p2p),
        "blake3_mib_s": round(hashing),
        "seal_mib_s": round(sealing),
        "open_mib_s": round(opening),
        "seal_over_blake3": (sealing / hashing * 1_000.0).round() / 1_000.0,
        "open_over_blake3": (opening / hashing * 1_000.0).round() / 1_000.0,
        "sealed_upload_mib_s": round(sealed_upload),
        "sealed_upload_over_plain_upload": (sealed_upload / upload * 1_000.0).round() / 1_000.0,
    }))
}

/// Seals `bytes` as it uploads them, as a client streams a private input (the SDK's
/// `upload_sealed`: sealing and sending overlap, and the sealed blob never sits whole in
/// memory).
fn sealed_upload_of(client: &Client, key: &ContentKey, bytes: &[u8]) -> Result<()> {
    let (_, size) = transfer::upload_sealed(client, bytes, key, Path::new("the payload"), drop)?;
    ensure!(size == sealed::sealed_len(bytes.len() as u64), "the node stored {size} bytes of the sealed blob");
    Ok(())
}

fn connect(api: SocketAddr) -> Result<Client> {
    Ok(Client::new(&format!("http://{api}"))?)
}

pub fn run(mib: usize) -> Result<()> {
    let mut bytes = payload(mib << 20);
    let data = std::env::temp_dir().join(format!("ogpu-bench-blobs-{}", std::process::id()));
    let ports = crate::devnet::free_ports(2, &[])?;
    let [first, second] = [ports[0], ports[1]].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let mut devnet = std::process::Command::new(std::env::current_exe()?)
        .args(["devnet", "--dashboard", "127.0.0.1:0", "--validators", "2", "--providers", "0"])
        .args(["--api", &first.to_string(), "--api", &second.to_string(), "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let report =
        connect(first).and_then(|first| connect(second).and_then(|second| measure(&first, &second, &mut bytes)));
    let _ = std::process::Command::new("kill").args(["-INT", &devnet.id().to_string()]).status();
    let _ = devnet.wait();
    let _ = std::fs::remove_dir_all(&data);
    println!("{}", report?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_as_long_as_asked_and_does_not_repeat_early() {
        let bytes = payload(1 << 20);
        assert_eq!(bytes.len(), 1 << 20);
        assert_ne!(bytes[..4096], bytes[4096..8192]);
        assert_eq!(payload(13).len(), 13);
    }
}
