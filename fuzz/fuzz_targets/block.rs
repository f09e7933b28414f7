//! Blocks and headers from peers: strict decoding (decode then encode gives the same
//! bytes), and checking a header's signature never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::Block;
use ogpu_core::block::SignedHeader;
use ogpu_core::encoding::{Canonical, decode_bounded};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(block) = Block::decode(bytes) {
        assert_eq!(block.encode(), bytes, "one encoding per block");
        let _ = block.signed.verify();
        let _ = ogpu_core::block::tx_root(&block.txs);
    }
    if let Ok(header) = decode_bounded::<SignedHeader>(bytes, 4096) {
        assert_eq!(borsh::to_vec(&header).unwrap(), bytes, "one encoding per header");
        let _ = header.verify();
    }
});
