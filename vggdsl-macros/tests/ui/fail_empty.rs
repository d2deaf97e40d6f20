// A call without a model.

vggdsl_macros::vgg!();

fn main() {}
