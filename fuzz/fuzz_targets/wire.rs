//! Every message a peer can send: replica wire messages (consensus, blocks, block
//! requests, transaction batches) and blob chunk requests and answers. Strict decoding:
//! what decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_consensus::Message;
use ogpu_core::encoding::Canonical;
use ogpu_node::blobs::{ChunkAnswer, ChunkRequest};
use ogpu_node::replica::WireMessage;

fn round_trips<T: Canonical>(bytes: &[u8]) {
    if let Ok(message) = T::decode(bytes) {
        assert_eq!(message.encode(), bytes, "one encoding per message");
    }
}

fuzz_target!(|bytes: &[u8]| {
    round_trips::<WireMessage>(bytes);
    round_trips::<Message>(bytes);
    round_trips::<ChunkRequest>(bytes);
    round_trips::<ChunkAnswer>(bytes);
});
