//! The witness's frontier: agreement with the tree and strict decoding.
#![allow(clippy::unwrap_used)]

use super::tests::tree_of;
use super::*;

#[test]
fn frontier_tracks_the_tree() {
    let (tree, leaves) = tree_of(300);
    let mut frontier = Frontier::new();
    assert_eq!(frontier, Frontier::default());
    assert_eq!(frontier.root(), empty_root());
    for (size, leaf) in leaves.iter().enumerate() {
        assert_eq!(frontier.size(), size as u64);
        assert_eq!(frontier.root(), tree.root_at(size as u64).unwrap(), "size {size}");
        assert_eq!(frontier.hashes().len(), (size as u64).count_ones() as usize);
        assert_eq!(frontier, Frontier::from_tree(&tree, size as u64).unwrap());
        let bytes = frontier.to_bytes();
        assert_eq!(bytes.len(), 9 + 32 * frontier.hashes().len());
        assert_eq!(Frontier::from_bytes(&bytes).unwrap(), frontier);
        frontier.push(*leaf);
    }
    assert_eq!(frontier.root(), tree.root());
}

#[test]
fn frontier_decoding_is_strict() {
    let (tree, _) = tree_of(13);
    let frontier = Frontier::from_tree(&tree, 13).unwrap();
    let bytes = frontier.to_bytes();
    assert_eq!(bytes[..9], [0, 0, 0, 0, 0, 0, 0, 13, 3]);
    for cut in 0..9 {
        assert_eq!(
            Frontier::from_bytes(&bytes[..cut]),
            Err(ProofError::FrontierTruncated { got: cut })
        );
    }
    for cut in 9..bytes.len() {
        assert_eq!(
            Frontier::from_bytes(&bytes[..cut]),
            Err(ProofError::FrontierLength {
                expected: bytes.len(),
                got: cut
            })
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        Frontier::from_bytes(&trailing),
        Err(ProofError::FrontierLength {
            expected: bytes.len(),
            got: bytes.len() + 1
        })
    );
    let mut miscounted = bytes.clone();
    miscounted[8] = 2;
    assert_eq!(
        Frontier::from_bytes(&miscounted),
        Err(ProofError::FrontierCount {
            size: 13,
            count: 2,
            expected: 3
        })
    );
    // A count matching the bytes but not the size is still refused.
    let mut resized = bytes.clone();
    resized[7] = 12;
    assert_eq!(
        Frontier::from_bytes(&resized),
        Err(ProofError::FrontierCount {
            size: 12,
            count: 3,
            expected: 2
        })
    );

    let mut biggest = (1u64 << 63).to_be_bytes().to_vec();
    biggest.push(1);
    biggest.extend_from_slice(&[7; 32]);
    let decoded = Frontier::from_bytes(&biggest).unwrap();
    assert_eq!(decoded.size(), 1 << 63);
    assert_eq!(decoded.root(), [7; 32]);
    assert_eq!(decoded.to_bytes(), biggest);
    let mut too_big = ((1u64 << 63) + 1).to_be_bytes().to_vec();
    too_big.push(2);
    too_big.extend_from_slice(&[7; 64]);
    assert_eq!(
        Frontier::from_bytes(&too_big),
        Err(ProofError::FrontierSizeTooLarge { size: (1 << 63) + 1 })
    );
    assert_eq!(
        Frontier::from_bytes(&Frontier::new().to_bytes()).unwrap(),
        Frontier::new()
    );
}
