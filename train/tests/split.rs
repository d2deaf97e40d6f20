//! The validation split: carved from the training set, disjoint from what is trained on and from
//! the test set, of exactly the size asked, and the same images whatever the seed or the threads.

use std::collections::HashSet;

use vggdsl_runtime::tch;
use vggdsl_test_support::cifar::write_cifar10;
use vggdsl_test_support::tempdir;
use vggdsl_train::data::split::first;
use vggdsl_train::data::{
    carve_validation, default_validation_size, DataError, Dataset, ImageSet, Split,
};

fn sets() -> (ImageSet, ImageSet) {
    let dir = tempdir();
    write_cifar10(dir.path(), 40, 30);
    let load = |split| ImageSet::load(Dataset::Cifar10, split, dir.path()).unwrap();
    (load(Split::Train), load(Split::Test))
}

fn images(set: &ImageSet) -> Vec<Vec<u8>> {
    (0..set.len()).map(|i| set.image(i).to_vec()).collect()
}

#[test]
fn the_split_is_disjoint_exact_and_the_same_every_time() {
    let (all, test) = sets();
    assert_eq!(all.len(), 200);
    let (train, validation) = carve_validation(&all, 37).unwrap();
    let validation = validation.unwrap();
    assert_eq!((train.len(), validation.len()), (163, 37));

    // Every image of the training file lands in exactly one part (the noise makes each unique).
    let file = images(&all);
    assert_eq!(file.iter().collect::<HashSet<_>>().len(), 200);
    let (t, v) = (images(&train), images(&validation));
    let position = |image: &Vec<u8>| file.iter().position(|f| f == image).unwrap();
    let mut seen: Vec<usize> = t.iter().chain(&v).map(position).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    // The training part keeps file order, the validation part is ascending too.
    let trained: Vec<usize> = t.iter().map(position).collect();
    let held_out: Vec<usize> = v.iter().map(position).collect();
    assert!(trained.windows(2).all(|w| w[0] < w[1]));
    assert!(held_out.windows(2).all(|w| w[0] < w[1]));
    // Labels travel with their images.
    for (i, &p) in held_out.iter().enumerate() {
        assert_eq!(validation.label(i), all.label(p));
    }
    // Nothing of the test set.
    let test = images(&test);
    assert!(v.iter().all(|image| !test.contains(image)));

    // The same images whatever libtorch's seed and threads (the draw is ChaCha8's, fixed seed).
    for (seed, threads) in [(1, 1), (99, 2)] {
        tch::manual_seed(seed);
        tch::set_num_threads(threads);
        let (again, validation_again) = carve_validation(&all, 37).unwrap();
        assert_eq!(images(&again), t);
        assert_eq!(images(&validation_again.unwrap()), v);
    }
    // A larger split holds the smaller one's images: a prefix of the same permutation.
    let (_, larger) = carve_validation(&all, 60).unwrap();
    let larger = images(&larger.unwrap());
    assert!(v.iter().all(|image| larger.contains(image)));
}

#[test]
fn sizes_zero_default_and_too_large() {
    let (all, _) = sets();
    let (train, none) = carve_validation(&all, 0).unwrap();
    assert!(none.is_none());
    assert_eq!(images(&train), images(&all));
    assert_eq!(default_validation_size(200), 20);
    assert_eq!(default_validation_size(60_000), 5_000);
    let e = carve_validation(&all, 200).unwrap_err();
    assert!(matches!(e, DataError::ValidationSize { .. }));
    assert_eq!(
        e.to_string(),
        "a validation split of 200 images leaves none to train on: the training set has 200; \
         choose a smaller --val-size (0 for none)"
    );
    let head = first(&all, 7);
    assert_eq!(images(&head), images(&all)[..7]);
    assert_eq!(first(&all, 1_000).len(), 200);
}
