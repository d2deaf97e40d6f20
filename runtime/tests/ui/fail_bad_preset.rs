// An unknown cfg preset.

vggdsl_runtime::vgg!(pub Net<cfg = vg16>);

fn main() {}
