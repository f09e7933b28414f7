//! Sealed blobs through a real node's store, as private tasks move them: a result sealed
//! for a task's parties reads back whole and checked, and a sealed copy that was altered,
//! cut short, swapped for another or opened with the wrong key is a clear error, never
//! bytes that are not the result.

mod common;

use std::path::Path;

use common::{Node, client_once_finalizing, free_port, genesis};
use ogpu_client::transfer::{self, Delivered, TransferError};
use ogpu_core::manifest::{self, OutputFile};
use ogpu_core::rng::DetRng;
use ogpu_core::sealed::{self, CHUNK, ContentKey};
use ogpu_core::{BlobHash, Hash};

fn key(purpose: &str) -> ContentKey {
    ContentKey::generate(&mut DetRng::new(&Hash::ZERO, purpose, &[]))
}

/// An output directory with a small file and one of several chunks, and its manifest.
fn outputs(dir: &Path) -> (Vec<OutputFile>, Vec<u8>) {
    let model: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
    let files = [("metrics.json", b"{\"accuracy\": 0.93}".to_vec()), ("model.bin", model)];
    let listed: Vec<OutputFile> = files
        .iter()
        .map(|(path, bytes)| {
            std::fs::write(dir.join(path), bytes).unwrap();
            OutputFile { path: path.to_string(), size: bytes.len() as u64, hash: BlobHash(Hash::of_bytes(bytes)) }
        })
        .collect();
    let manifest = manifest::write(&listed);
    (listed, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_result_reads_back_whole_and_a_tampered_copy_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start(data.path(), &genesis(), port, 100).await;
    tokio::task::spawn_blocking(move || {
        let client = client_once_finalizing(port);
        let (out, fetched) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (files, manifest) = outputs(out.path());
        let output = Hash::of_bytes(&manifest);
        let result_key = key("result");
        let index = transfer::deliver(&client, out.path(), &files, &manifest, Some(&result_key)).unwrap().unwrap();
        assert!(!client.has_blob(&BlobHash(output)).unwrap(), "nothing plain was uploaded");
        for file in &files {
            assert!(!client.has_blob(&file.hash).unwrap(), "{} went up sealed only", file.path);
        }

        let written = transfer::fetch(&client, &output, Some((index, key("result"))), fetched.path()).unwrap();
        assert_eq!(written, files);
        for file in &files {
            let (got, want) =
                (std::fs::read(fetched.path().join(&file.path)), std::fs::read(out.path().join(&file.path)));
            assert_eq!(got.unwrap(), want.unwrap(), "{}", file.path);
        }

        let refused = |index: BlobHash, key: ContentKey| {
            let delivered = Delivered::open(&client, &output, Some((index, key)));
            let delivered = match delivered {
                Ok(delivered) => delivered,
                Err(error) => return error,
            };
            let model = &files[1].hash;
            delivered.read_into(model, &mut Vec::new(), Path::new("model.bin")).unwrap_err()
        };
        // The wrong key: the sealed manifest does not open.
        let wrong = refused(index, key("someone else's"));
        assert!(matches!(&wrong, TransferError::Sealed { reason, .. } if reason.contains("chunk 0")), "{wrong}");

        // Sealed copies of the model that were altered, cut short, or are of other bytes,
        // each listed by an index as the executor would have revealed it.
        let copies = manifest::parse_sealed_index(&download(&client, &index)).unwrap();
        let sealed_model = download(&client, &copies[2].hash);
        let mut flipped = sealed_model.clone();
        flipped[28 + CHUNK + 16 + 3] ^= 1; // in chunk 1, past the header and chunk 0 with its tag
        let cut = sealed_model[..sealed_model.len() - (5 + 16)].to_vec(); // its last chunk: 5 bytes and a tag
        let mut other = Vec::new();
        sealed::seal(&result_key, &mut DetRng::new(&Hash::ZERO, "nonce", &[]), &mut &b"not the model"[..], &mut other)
            .unwrap();
        for (bad, why) in [(flipped, "chunk 1 does not authenticate"), (cut, "cut short"), (other, "hashing to")] {
            let (hash, size) = client.upload_blob(bad.as_slice()).unwrap();
            let mut listed: Vec<(BlobHash, u64)> = copies.iter().map(|copy| (copy.hash, copy.size)).collect();
            listed[2] = (hash, size);
            let (forged, _) = client.upload_blob(manifest::write_sealed_index(&listed).as_slice()).unwrap();
            let error = refused(forged, key("result"));
            assert!(matches!(&error, TransferError::Sealed { reason, .. } if reason.contains(why)), "{why}: {error}");
        }
        // An index that lists fewer copies than the manifest has files.
        let short: Vec<(BlobHash, u64)> = copies[..2].iter().map(|copy| (copy.hash, copy.size)).collect();
        let (short, _) = client.upload_blob(manifest::write_sealed_index(&short).as_slice()).unwrap();
        let error = refused(short, key("result"));
        assert!(
            matches!(&error, TransferError::Sealed { reason, .. } if reason.contains("1 sealed files for 2")),
            "{error}"
        );
    })
    .await
    .unwrap();
    node.stop().await;
}

fn download(client: &ogpu_client::Client, hash: &BlobHash) -> Vec<u8> {
    let mut bytes = Vec::new();
    client.download_blob(hash, &mut bytes).unwrap();
    bytes
}
