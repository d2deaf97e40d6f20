//! What the datasets are, and the data files they refuse: each refusal one sentence naming the
//! file and what is wrong with it.

use super::*;

#[test]
fn dataset_facts() {
    assert_eq!(
        Dataset::ALL.map(|d| d.name().parse::<Dataset>().unwrap()),
        Dataset::ALL
    );
    assert_eq!(
        "cifar".parse::<Dataset>().unwrap_err().to_string(),
        "unknown dataset `cifar`; expected one of cifar10, cifar100, fashion-mnist, mnist"
    );
    for d in Dataset::ALL {
        assert_eq!(d.class_names().len() as i64, d.num_classes());
        let channels = d.image_shape()[0] as usize;
        assert_eq!((d.mean().len(), d.std().len()), (channels, channels));
    }
    assert_eq!(Dataset::Cifar10.class_names()[0], "airplane");
    assert_eq!(Dataset::Cifar10.class_names()[9], "truck");
    assert_eq!(Dataset::FashionMnist.class_names()[9], "Ankle boot");
    assert_eq!(Dataset::Cifar100.class_names()[42], "42");
    assert_eq!(Dataset::FashionMnist.image_shape(), [1, 28, 28]);
    assert_eq!(Dataset::Cifar100.num_classes(), 100);
}

#[test]
fn model_mismatches_are_one_sentence() {
    assert!(Dataset::Cifar10
        .check_model("Vgg16Bn", [3, 32, 32], 10)
        .is_ok());
    let err = Dataset::FashionMnist
        .check_model("Foo", [3, 32, 32], 10)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fashion-mnist images are 1×28×28 but model Foo takes 3×32×32"
    );
    let err = Dataset::Cifar100
        .check_model("Foo", [3, 32, 32], 10)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cifar100 has 100 classes but model Foo has 10 outputs"
    );
}

#[test]
fn missing_files_name_the_file_and_the_folders() {
    let dir = tempdir();
    let d = dir.path().display();
    assert_eq!(
        load_err(Dataset::Cifar10, Split::Train, dir.path()),
        format!("cannot find data_batch_1.bin (cifar10) in {d} or {d}/cifar-10-batches-bin")
    );
    assert_eq!(
        load_err(Dataset::FashionMnist, Split::Test, dir.path()),
        format!(
            "cannot find t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz (fashion-mnist) \
             in {d} or {d}/FashionMNIST/raw"
        )
    );
    write_cifar10(dir.path());
    std::fs::remove_file(dir.path().join("cifar-10-batches-bin/data_batch_3.bin")).unwrap();
    assert!(load_err(Dataset::Cifar10, Split::Train, dir.path())
        .starts_with("cannot find data_batch_3.bin "));
}

#[test]
fn cifar_size_and_label_errors() {
    let dir = tempdir();
    let path = dir.path().join("test_batch.bin");
    let p = path.display();
    let mut bytes = cifar_record(&[1], |_, _, _| 0);
    bytes.extend(cifar_record(&[2], |_, _, _| 0));
    std::fs::write(&path, &bytes[..6141]).unwrap();
    assert_eq!(
        load_err(Dataset::Cifar10, Split::Test, dir.path()),
        format!(
            "{p} is 6141 bytes, not a whole number of 3073-byte cifar10 records; \
             it is truncated or from another dataset"
        )
    );
    std::fs::write(&path, b"").unwrap();
    assert_eq!(
        load_err(Dataset::Cifar10, Split::Test, dir.path()),
        format!("{p} holds no images")
    );
    bytes.extend(cifar_record(&[10], |_, _, _| 0));
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        load_err(Dataset::Cifar10, Split::Test, dir.path()),
        format!("record 2 (counting from 0) of {p} has label 10, but cifar10 labels are 0 to 9")
    );
    let path = dir.path().join("test.bin");
    std::fs::write(&path, cifar_record(&[0, 100], |_, _, _| 0)).unwrap();
    assert_eq!(
        load_err(Dataset::Cifar100, Split::Test, dir.path()),
        format!(
            "record 0 (counting from 0) of {} has label 100, but cifar100 labels are 0 to 99",
            path.display()
        )
    );
}

#[test]
fn idx_errors() {
    let dir = tempdir();
    write_fashion(dir.path());
    let images = dir.path().join("t10k-images-idx3-ubyte");
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    let (i, l) = (images.display(), labels.display());
    let err = || load_err(Dataset::FashionMnist, Split::Test, dir.path());

    // Header count against the bytes that follow.
    write_idx(&images, &[3, 28, 28], &[0; 2 * 784], false);
    assert_eq!(
        err(),
        format!("the header of {i} announces 3 images (2352 bytes) but 1568 bytes follow it")
    );
    write_idx(&images, &[3, 28, 28], &[0; 3 * 784], false);
    write_idx(&labels, &[3], &[1, 2, 3, 4], false);
    assert_eq!(
        err(),
        format!("the header of {l} announces 3 labels (3 bytes) but 4 bytes follow it")
    );
    // Magic numbers: an image file given as labels, and a file cut inside its header.
    write_idx(&labels, &[3, 28, 28], &[0; 3 * 784], false);
    assert_eq!(
        err(),
        format!("{l} is not an IDX labels file: it starts with 0x00000803, not 0x00000801")
    );
    std::fs::write(&labels, [0, 0, 8, 1, 0, 0]).unwrap();
    assert_eq!(err(), format!("{l} ends inside its IDX header"));
    // Counts, labels and image size.
    write_idx(&labels, &[2], &[1, 2], false);
    assert_eq!(err(), format!("{i} holds 3 images but {l} holds 2 labels"));
    write_idx(&labels, &[3], &[1, 10, 2], false);
    assert_eq!(
        err(),
        format!(
            "record 1 (counting from 0) of {l} has label 10, but fashion-mnist labels are 0 to 9"
        )
    );
    write_idx(&images, &[3, 32, 32], &[0; 3 * 1024], false);
    assert_eq!(
        err(),
        format!("{i} holds 32×32 images, but fashion-mnist images are 28×28")
    );
    write_idx(&images, &[0, 28, 28], &[], false);
    assert_eq!(err(), format!("{i} holds no images"));
}

#[test]
fn gzip_errors_name_the_file() {
    let dir = tempdir();
    write_fashion(dir.path());
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let prefix = format!("{} is not valid gzip: ", path.display());
    let err = || load_err(Dataset::FashionMnist, Split::Train, dir.path());
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    assert!(err().starts_with(&prefix), "{}", err());
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    assert!(err().starts_with(&prefix), "{}", err());
}

#[test]
fn gzip_is_expanded_no_further_than_the_header_announces() {
    let dir = tempdir();
    write_fashion(dir.path());
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let p = path.display();
    let err = || load_err(Dataset::FashionMnist, Split::Train, dir.path());
    // Two images announced, a megabyte of zeros behind them: reading stops one byte past.
    write_idx(&path, &[2, 28, 28], &vec![0; 1 << 20], true);
    assert_eq!(
        err(),
        format!(
            "the header of {p} announces 2 images (1568 bytes) but more than 1568 bytes follow it"
        )
    );
    // 60,000 images announced by a file far too small to expand to them: not even tried.
    write_idx(&path, &[60_000, 28, 28], &[0; 784], true);
    let compressed = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        err(),
        format!(
            "the header of {p} announces 60000 images (47040000 bytes), more than its \
             {compressed} bytes of gzip can hold"
        )
    );
}

#[test]
fn mnist_and_fashion_mnist_are_told_apart_by_their_pictures() {
    let dir = tempdir();
    write_fashion(dir.path());
    let images = dir.path().join("t10k-images-idx3-ubyte");
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    let i = images.display();
    write_idx(&labels, &[100], &[1; 100], false);
    // 100 images as bright on average as Fashion-MNIST's (73/255 = 0.286), then as MNIST's.
    for (pixel, accepted, refused, looks) in [
        (73, Dataset::FashionMnist, Dataset::Mnist, "0.286"),
        (33, Dataset::Mnist, Dataset::FashionMnist, "0.129"),
    ] {
        write_idx(&images, &[100, 28, 28], &vec![pixel; 100 * 784], false);
        assert!(ImageSet::load(accepted, Split::Test, dir.path()).is_ok());
        let other = accepted.name();
        assert_eq!(
            load_err(refused, Split::Test, dir.path()),
            format!(
                "the images of {i} look like {other}'s, not {refused}'s: their mean pixel is \
                 {looks}, {other}'s is {:.3} and {refused}'s {:.3} (the two datasets' files \
                 differ only in their pictures); pass --dataset {other} if they are {other}",
                accepted.mean()[0],
                refused.mean()[0]
            )
        );
    }
    // Fewer images say too little: taken as named.
    write_idx(&labels, &[99], &[1; 99], false);
    write_idx(&images, &[99, 28, 28], &vec![73; 99 * 784], false);
    assert!(ImageSet::load(Dataset::Mnist, Split::Test, dir.path()).is_ok());
}
