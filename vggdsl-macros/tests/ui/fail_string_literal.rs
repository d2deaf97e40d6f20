// The language has no strings: a string literal after the start is a syntax error.

vggdsl_macros::vgg!(pub Net<cfg = "default">);

fn main() {}
