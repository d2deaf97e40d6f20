// A call without a model.

vggdsl_runtime::vgg!();

fn main() {}
