//! A binary Merkle tree over an ordered list of leaf hashes, with inclusion proofs.
//!
//! Used for the transaction root of a block, the state root and proof-of-learning
//! checkpoint traces. Leaves and inner nodes hash under different domains so that an inner
//! node can never be presented as a leaf. An odd node at the end of a level is carried up
//! unchanged, so the tree of n leaves has exactly n - 1 inner nodes.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::hash::Hash;

const NODE: &str = "ogpu/merkle/node";
const EMPTY: &str = "ogpu/merkle/empty";

fn node(left: &Hash, right: &Hash) -> Hash {
    Hash::tagged(NODE, &[&left.0, &right.0])
}

/// The root of `leaves`; the empty list has a fixed root of its own.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::tagged(EMPTY, &[]);
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// The path from one leaf to the root.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proof {
    pub index: u64,
    pub leaf_count: u64,
    pub siblings: Vec<Hash>,
}

/// A proof that `leaves[index]` is under `root(leaves)`; `None` when the index is out of range.
pub fn prove(leaves: &[Hash], index: usize) -> Option<Proof> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    let mut level = leaves.to_vec();
    let mut at = index;
    while level.len() > 1 {
        let sibling = at ^ 1;
        if sibling < level.len() {
            siblings.push(level[sibling]);
        }
        level = next_level(&level);
        at /= 2;
    }
    Some(Proof { index: index as u64, leaf_count: leaves.len() as u64, siblings })
}

impl Proof {
    /// Whether `leaf` sits at this proof's index under `root`.
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> bool {
        if self.index >= self.leaf_count {
            return false;
        }
        let mut hash = *leaf;
        let mut at = self.index;
        let mut width = self.leaf_count;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let has_sibling = at ^ 1 < width;
            if has_sibling {
                let Some(sibling) = siblings.next() else {
                    return false;
                };
                hash = if at.is_multiple_of(2) { node(&hash, sibling) } else { node(sibling, &hash) };
            }
            at /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && hash == *root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| Hash::of_bytes(&i.to_le_bytes())).collect()
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_no_other_leaf_does(n in 1usize..70, pick in 0usize..70) {
            let leaves = leaves(n);
            let root = root(&leaves);
            let index = pick % n;
            let proof = prove(&leaves, index).unwrap();
            prop_assert!(proof.verify(&root, &leaves[index]));
            prop_assert!(!proof.verify(&root, &Hash::of_bytes(b"other")));
            let mut moved = proof.clone();
            moved.index = ((index + 1) % n) as u64;
            prop_assert!(n == 1 || !moved.verify(&root, &leaves[index]));
        }
    }

    #[test]
    fn roots_depend_on_order_and_count() {
        let l = leaves(3);
        assert_ne!(root(&l), root(&[l[1], l[0], l[2]]));
        assert_ne!(root(&l[..2]), root(&l));
        assert_ne!(root(&[]), root(&l[..1]));
        assert!(prove(&l, 3).is_none());
    }
}
