//! The README's recipe: insta snapshots of a model's summary and generated code, so a changed cfg
//! or rate is a reviewed diff. It needs only `vggdsl` and `insta`.

#[test]
fn architecture() {
    let source = include_str!("../examples/hrank_vgg16_pruned.vgg");
    let nets =
        vggdsl::load(source, "examples/hrank_vgg16_pruned.vgg").unwrap_or_else(|d| panic!("{d}"));
    for net in &nets {
        insta::assert_snapshot!(
            net.spec.name.clone(),
            vggdsl::analysis::summarize(net).table()
        );
    }
    insta::assert_snapshot!(
        "code",
        vggdsl::compile(source, "examples/hrank_vgg16_pruned.vgg").unwrap()
    );
}
