// An unknown cfg preset.

vggdsl_macros::vgg!(pub Net<cfg = vg16>);

fn main() {}
