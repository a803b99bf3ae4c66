//! Length-grouped evaluation and inference: predictions come back in input order and equal
//! those of ungrouped batches and of one example at a time (no padding at all).

mod common;

use burn::tensor::Device;
use common::{data, model, tokenizer};
use peft_train::data::ClassificationBatcher;
use peft_train::predict::{BatchOrder, predict};
use peft_train::trainer::{evaluate, evaluate_with_order};

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}[{i}]");
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() <= 1e-5 * v.abs().max(1.0),
                "{what}[{i}]: {u} vs {v}"
            );
        }
    }
}

#[test]
fn grouped_predictions_are_in_input_order_and_equal_ungrouped_ones() {
    let device = Device::flex();
    let tok = tokenizer();
    let batcher = ClassificationBatcher::new(tok.clone());
    let items = data(&tok).valid;
    let model = model(&device);
    let single = predict(&model, &items, &batcher, 1, BatchOrder::Input, &device).unwrap();
    let input = predict(&model, &items, &batcher, 7, BatchOrder::Input, &device).unwrap();
    let grouped = predict(&model, &items, &batcher, 7, BatchOrder::ByLength, &device).unwrap();
    assert_close(
        &input.logits,
        &single.logits,
        "input order vs one at a time",
    );
    assert_close(&grouped.logits, &single.logits, "grouped vs one at a time");
    assert_eq!(grouped.labels, input.labels);
    // The logits differ from example to example, so a permutation would be caught.
    let distinct = single.logits.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        distinct > items.len() / 2,
        "too few distinct logits: {distinct}"
    );
    // Grouping pads less (lengths vary from 2 to 5 words here).
    assert!(grouped.padded_tokens < input.padded_tokens);
    assert_eq!(
        single.padded_tokens,
        items.iter().map(|i| i.input_ids.len()).sum::<usize>()
    );

    let plain = evaluate(&model, &items, &batcher, 7, &device).unwrap();
    let by_length =
        evaluate_with_order(&model, &items, &batcher, 7, BatchOrder::ByLength, &device).unwrap();
    assert_eq!(plain.correct, by_length.correct);
    assert!(
        (plain.loss - by_length.loss).abs() < 1e-5,
        "{} vs {}",
        plain.loss,
        by_length.loss
    );
    // GLUE's F1 / Matthews of the two-class head, from the same predictions' confusion counts.
    let counts = peft_train::glue_metrics::BinaryCounts::from_pairs(
        single
            .labels
            .iter()
            .copied()
            .zip(items.iter().map(|i| i.label)),
    )
    .unwrap_or_else(|| panic!("two classes"));
    assert!(counts.true_pos + counts.true_neg > 0 && counts.false_pos + counts.false_neg > 0);
    assert_eq!(plain.f1, Some(100.0 * counts.f1()));
    assert_eq!(plain.matthews, Some(100.0 * counts.matthews()));
    assert_eq!(
        (plain.f1, plain.matthews),
        (by_length.f1, by_length.matthews)
    );
}
