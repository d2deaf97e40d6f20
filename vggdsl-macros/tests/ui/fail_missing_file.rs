// The file form with a file that does not exist: the error names the path it tried. (A relative
// path is read from the crate's root: the accepted file forms in runtime/tests/macro_forms.rs.)

vggdsl_macros::vgg!("/nonexistent/models/missing.vgg");

fn main() {}
