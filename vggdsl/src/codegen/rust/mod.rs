//! Checked network to Rust source for tch: one struct per Sequential, straight-line forward code,
//! PyTorch names everywhere, and the inference model ([`inference`]). Every front door (CLI,
//! build.rs helper, `vgg!`) calls `tokens`.

use super::{model_doc, shape_text, Origin};
use crate::analysis::{self, thousands};
use crate::init::{self, Op};
use crate::ir::{Architecture, Layer, LayerKind};
use crate::names;
use crate::spec::CfgItem;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

mod inference;

use inference::inference;

/// The items of one model: structs, constructor, init, forward passes, repr.
pub fn tokens(net: &Architecture, origin: &Origin) -> TokenStream {
    let summary = analysis::summarize(net);
    let structs = structs(net, origin, &summary);
    let methods = methods(net, &summary);
    let inference = inference(net);
    quote! {
        #structs
        #methods
        #inference
    }
}

/// The model's struct, its two Sequentials' and its activations'.
fn structs(net: &Architecture, origin: &Origin, summary: &analysis::Summary) -> TokenStream {
    let spec = &net.spec;
    let name = ident(&spec.name);
    let vis = visibility(net);
    let features_ty = ident(&names::features_type(&spec.name));
    let classifier_ty = ident(&names::classifier_type(&spec.name));
    let activations_ty = ident(&names::activations_type(&spec.name));
    let struct_doc = doc_lines(&model_doc(net, origin, summary));
    let (features, classifier) = (names::FEATURES, names::CLASSIFIER);
    let (f_field, c_field) = (ident(features), ident(classifier));
    let features_doc = format!(" The `{features}` Sequential of [`{}`].", spec.name);
    let classifier_doc = format!(" The `{classifier}` Sequential of [`{}`].", spec.name);
    let activations_doc = format!(
        " Feature maps at [`{}::RELU_CFG`]: each conv block's output, where HRank ranks filters.",
        spec.name
    );
    let feature_fields = fields(&vis, &net.features);
    let classifier_fields = fields(&vis, &net.classifier);
    let tap_names = tap_names(net);
    let tap_docs: Vec<String> = net
        .relu_cfg
        .iter()
        .map(|&i| {
            format!(
                " `{}` (position {i}), {}.",
                names::module_path(features, &net.features[i].name),
                shape_text(&net.features[i].out_shape)
            )
        })
        .collect();
    quote! {
        #struct_doc
        #[derive(Debug)]
        #vis struct #name {
            #vis #f_field: #features_ty,
            #vis #c_field: #classifier_ty,
        }

        #[doc = #features_doc]
        #[derive(Debug)]
        #vis struct #features_ty {
            #(#feature_fields)*
        }

        #[doc = #classifier_doc]
        #[derive(Debug)]
        #vis struct #classifier_ty {
            #(#classifier_fields)*
        }

        #[doc = #activations_doc]
        #[derive(Debug)]
        #vis struct #activations_ty {
            #(#[doc = #tap_docs] #vis #tap_names: ::vggdsl_runtime::tch::Tensor,)*
        }
    }
}

/// The fields of the activations struct: the layers at `relu_cfg`.
fn tap_names(net: &Architecture) -> Vec<Ident> {
    net.relu_cfg
        .iter()
        .map(|&i| ident(&net.features[i].name))
        .collect()
}

/// The model's methods, its `ModuleT` and its `Display`.
fn methods(net: &Architecture, summary: &analysis::Summary) -> TokenStream {
    let name = ident(&net.spec.name);
    let activations_ty = ident(&names::activations_type(&net.spec.name));
    let (collect_taps, tap_param) = collect_taps(net);
    let consts = constants(net, summary);
    let new_fn = new_fn(net);
    let init_fn = init_fn(net);
    let forward = forward_body(net);
    let repr = raw_string(&crate::repr::network(net));
    quote! {
        impl #name {
            #consts

            /// PyTorch's `print(net)` for this model.
            pub const REPR: &'static str = #repr;

            #new_fn

            #init_fn

            /// The forward pass that also returns the feature maps at [`Self::RELU_CFG`].
            pub fn forward_with_activations(
                &self,
                xs: &::vggdsl_runtime::tch::Tensor,
                train: bool,
            ) -> (::vggdsl_runtime::tch::Tensor, #activations_ty) {
                #collect_taps
            }

            /// The forward pass, handing `tap` each feature map at [`Self::RELU_CFG`].
            #[inline]
            fn forward_tapped(
                &self,
                xs: &::vggdsl_runtime::tch::Tensor,
                train: bool,
                #tap_param: impl FnMut(&::vggdsl_runtime::tch::Tensor),
            ) -> ::vggdsl_runtime::tch::Tensor {
                #forward
            }
        }

        impl ::vggdsl_runtime::tch::nn::ModuleT for #name {
            fn forward_t(&self, xs: &::vggdsl_runtime::tch::Tensor, train: bool) -> ::vggdsl_runtime::tch::Tensor {
                self.forward_tapped(xs, train, |_| {})
            }
        }

        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(Self::REPR)
            }
        }
    }
}

/// The body of `forward_with_activations`, and the name of `forward_tapped`'s tap parameter.
fn collect_taps(net: &Architecture) -> (TokenStream, TokenStream) {
    let activations_ty = ident(&names::activations_type(&net.spec.name));
    let tap_names = tap_names(net);
    // A model with one conv has no tap point: nothing to collect, and `tap` goes unused.
    if tap_names.is_empty() {
        return (
            quote! { (self.forward_tapped(xs, train, |_| {}), #activations_ty {}) },
            quote!(_tap),
        );
    }
    let count = Literal::usize_unsuffixed(tap_names.len());
    let collect = quote! {
        let mut maps = ::std::vec::Vec::with_capacity(#count);
        let ys = self.forward_tapped(xs, train, |xs| maps.push(xs.shallow_clone()));
        let mut maps = maps.into_iter();
        let mut next = || maps.next().expect("one map per RELU_CFG point");
        (ys, #activations_ty { #(#tap_names: next()),* })
    };
    (collect, quote!(mut tap))
}

/// `new`: every layer built under its PyTorch path, then the init rules applied.
fn new_fn(net: &Architecture) -> TokenStream {
    let spec = &net.spec;
    let features_ty = ident(&names::features_type(&spec.name));
    let classifier_ty = ident(&names::classifier_type(&spec.name));
    let (features, classifier) = (names::FEATURES, names::CLASSIFIER);
    let (f_field, c_field) = (ident(features), ident(classifier));
    let feature_inits = constructors(&net.features, features);
    let classifier_inits = constructors(&net.classifier, classifier);
    let uses = runtime_imports(net);
    let build = quote! {
        Self {
            #f_field: #features_ty { #(#feature_inits)* },
            #c_field: #classifier_ty { #(#classifier_inits)* },
        }
    };
    let construct = if spec.init.is_empty() {
        build
    } else {
        quote! {
            let mut net = #build;
            net.init();
            net
        }
    };
    quote! {
        /// Creates every variable under `p` with its PyTorch `state_dict` name, drawing PyTorch's
        /// default initialisation in construction order, then applies the model's init rules.
        pub fn new(p: &::vggdsl_runtime::tch::nn::Path) -> Self {
            use ::vggdsl_runtime::nn::{#(#uses),*};
            let #f_field = p / #features;
            let #c_field = p / #classifier;
            #construct
        }
    }
}

/// The head between the Sequentials: the seed's `nn.AvgPool2d` (flattening follows).
fn head(net: &Architecture) -> TokenStream {
    let (k, s) = (int(net.head.kernel), int(net.head.stride));
    quote!(::vggdsl_runtime::nn::AvgPool2d::new(#k, #s))
}

/// The model's visibility as written (`pub`, `pub(crate)`, …), for every generated item.
fn visibility(net: &Architecture) -> TokenStream {
    let vis = net.spec.visibility.as_deref().unwrap_or("");
    vis.parse()
        .expect("the checker admits only valid visibilities")
}

fn ident(s: &str) -> Ident {
    Ident::new(s, Span::call_site())
}

fn doc_lines(text: &str) -> TokenStream {
    let lines = text.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!(" {l}")
        }
    });
    quote! { #(#[doc = #lines])* }
}

/// The runtime layer type of a layer kind.
fn layer_type(kind: &LayerKind) -> &'static str {
    match kind {
        LayerKind::Conv2d { .. } => "Conv2d",
        LayerKind::BatchNorm2d { .. } | LayerKind::BatchNorm1d { .. } => "BatchNorm",
        LayerKind::ReLU => "ReLU",
        LayerKind::MaxPool2d { .. } => "MaxPool2d",
        LayerKind::Linear { .. } => "Linear",
    }
}

/// The runtime layer types the model uses, sorted, for the constructor's `use`.
fn runtime_imports(net: &Architecture) -> Vec<Ident> {
    let mut types: Vec<&str> = net.layers().map(|(_, l)| layer_type(&l.kind)).collect();
    types.sort_unstable();
    types.dedup();
    types.into_iter().map(ident).collect()
}

/// `conv0: Conv2d,` … with PyTorch's names.
fn fields(vis: &TokenStream, layers: &[Layer]) -> Vec<TokenStream> {
    layers
        .iter()
        .map(|l| {
            let name = ident(&l.name);
            let ty = ident(layer_type(&l.kind));
            let doc = format!(" `{}`", crate::repr::layer(&l.kind));
            quote! { #[doc = #doc] #vis #name: ::vggdsl_runtime::nn::#ty, }
        })
        .collect()
}

fn int(v: i64) -> Literal {
    Literal::i64_unsuffixed(v)
}

/// Construction in module order, which is also the order PyTorch draws default weights in.
fn constructors(layers: &[Layer], section: &str) -> Vec<TokenStream> {
    let section = ident(section);
    layers
        .iter()
        .map(|l| {
            let name = ident(&l.name);
            let path = &l.name;
            let value = match l.kind {
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    let (i, o, k, s, p) = (
                        int(in_channels),
                        int(out_channels),
                        int(kernel),
                        int(stride),
                        int(padding),
                    );
                    quote! { Conv2d::new(&#section / #path, #i, #o, #k, #s, #p) }
                }
                LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => {
                    let n = int(features);
                    quote! { BatchNorm::new(&#section / #path, #n) }
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => {
                    let (i, o) = (int(in_features), int(out_features));
                    quote! { Linear::new(&#section / #path, #i, #o) }
                }
                LayerKind::ReLU => quote! { ReLU },
                LayerKind::MaxPool2d { kernel, stride } => {
                    let (k, s) = (int(kernel), int(stride));
                    quote! { MaxPool2d::new(#k, #s) }
                }
            };
            quote! { #name: #value, }
        })
        .collect()
}

fn constants(net: &Architecture, s: &analysis::Summary) -> TokenStream {
    let [c, h, w] = net.spec.input.map(int);
    let classes = int(net.spec.num_classes);
    let cfg = net.spec.cfg.iter().map(|c| match c {
        CfgItem::Conv(w) => {
            let w = int(*w);
            quote!(::vggdsl_runtime::Cfg::Conv(#w))
        }
        CfgItem::Pool => quote!(::vggdsl_runtime::Cfg::M),
    });
    let relu = net.relu_cfg.iter().map(|&i| Literal::usize_unsuffixed(i));
    let conv = net.conv_cfg.iter().map(|&i| Literal::usize_unsuffixed(i));
    let (nr, nc) = (
        Literal::usize_unsuffixed(net.relu_cfg.len()),
        Literal::usize_unsuffixed(net.conv_cfg.len()),
    );
    let params: TokenStream = underscored(s.params).parse().expect("an integer literal");
    let params_cl: TokenStream = underscored(s.params_conv_linear)
        .parse()
        .expect("an integer literal");
    let macs: TokenStream = underscored(s.macs).parse().expect("an integer literal");
    let macs_doc = format!(" {}.", analysis::CONVENTION);
    quote! {
        /// One input image: channels, height, width.
        pub const INPUT_SHAPE: [i64; 3] = [#c, #h, #w];
        pub const NUM_CLASSES: i64 = #classes;
        /// The cfg as written: features, then the classifier's hidden width.
        pub const CFG: &'static [::vggdsl_runtime::Cfg] = &[#(#cfg),*];
        /// HRank's `relucfg`: positions in `features` where each conv block's output is read.
        pub const RELU_CFG: [usize; #nr] = [#(#relu),*];
        /// HRank's `convcfg`: positions of the convs in `features` (all but the last).
        pub const CONV_CFG: [usize; #nc] = [#(#conv),*];
        /// All parameters (BatchNorm running statistics excluded).
        pub const PARAMS: u64 = #params;
        /// Parameters of Conv2d and Linear layers only, the figure HRank reports.
        pub const PARAMS_CONV_LINEAR: u64 = #params_cl;
        #[doc = #macs_doc]
        pub const MACS: u64 = #macs;
    }
}

/// `14991946` → `14_991_946`.
fn underscored(n: u64) -> String {
    thousands(n).replace(',', "_")
}

fn float(v: f64) -> Literal {
    Literal::f64_unsuffixed(v)
}

/// The rule pass, in PyTorch's `modules()` order, under `no_grad`.
fn init_fn(net: &Architecture) -> Option<TokenStream> {
    if net.spec.init.is_empty() {
        return None;
    }
    let plan = init::plan(net);
    let mut fns: Vec<Ident> = plan
        .iter()
        .map(|s| match s.op {
            Op::Normal { .. } => ident("normal"),
            Op::Uniform { .. } => ident("uniform"),
            Op::Constant(_) => ident("constant"),
        })
        .collect();
    fns.sort_by_key(|i| i.to_string());
    fns.dedup();
    let steps = plan.into_iter().map(|s| {
        let (section, layer, tensor) = (ident(s.section), ident(&s.layer), ident(s.tensor));
        let target = quote!(&mut self.#section.#layer.#tensor);
        match s.op {
            Op::Normal { mean, std } => {
                let (m, sd) = (float(mean), float(std));
                quote! { normal(#target, #m, #sd); }
            }
            Op::Uniform { low, high } => {
                let (l, h) = (float(low), float(high));
                quote! { uniform(#target, #l, #h); }
            }
            Op::Constant(v) => {
                let v = float(v);
                quote! { constant(#target, #v); }
            }
        }
    });
    Some(quote! {
        /// The model's init rules, applied as the seed's `_initialize_weights` does: in module
        /// order, weight then bias.
        fn init(&mut self) {
            use ::vggdsl_runtime::init::{#(#fns),*};
            #(#steps)*
        }
    })
}

/// The forward pass as straight-line code in layer order, calling `tap` with each conv block's
/// output at the `relu_cfg` points. `forward_t` passes a closure that does nothing, which the
/// compiler removes, so one body serves both passes at no cost. One binding is reassigned, not
/// shadowed, so that each activation is freed once the next exists (as in PyTorch's
/// `Sequential`) unless autograd keeps it: shadowed bindings live to the end of the function.
fn forward_body(net: &Architecture) -> TokenStream {
    let mut stmts = Vec::new();
    for (pos, l) in net.features.iter().enumerate() {
        // The first layer reads the caller's `&Tensor`; later ones the previous output.
        let arg = if pos == 0 { quote!(xs) } else { quote!(&xs) };
        let name = ident(&l.name);
        let call = match l.kind {
            LayerKind::BatchNorm2d { .. } => quote!(f.#name.forward_t(#arg, train)),
            LayerKind::ReLU => quote!(f.#name.forward(xs)),
            _ => quote!(f.#name.forward(#arg)),
        };
        stmts.push(if pos == 0 {
            quote! { let mut xs = #call; }
        } else {
            quote! { xs = #call; }
        });
        if net.relu_cfg.contains(&pos) {
            stmts.push(quote! { tap(&xs); });
        }
    }
    let head = head(net);
    stmts.push(quote! { xs = #head.forward(&xs).flatten(1, -1); });
    let mut calls: Vec<TokenStream> = net
        .classifier
        .iter()
        .map(|l| {
            let name = ident(&l.name);
            match l.kind {
                LayerKind::BatchNorm1d { .. } => quote!(c.#name.forward_t(&xs, train)),
                LayerKind::ReLU => quote!(c.#name.forward(xs)),
                _ => quote!(c.#name.forward(&xs)),
            }
        })
        .collect();
    let last = calls.pop().expect("the classifier has layers");
    stmts.extend(calls.into_iter().map(|call| quote! { xs = #call; }));
    let (f_field, c_field) = (ident(names::FEATURES), ident(names::CLASSIFIER));
    quote! {
        let (f, c) = (&self.#f_field, &self.#c_field);
        #(#stmts)*
        #last
    }
}

/// A raw string literal, so the repr reads as text in the generated file.
fn raw_string(s: &str) -> Literal {
    let hashes = "#".repeat(
        (0..)
            .find(|n| !s.contains(&format!("\"{}", "#".repeat(*n))))
            .unwrap_or(1),
    );
    format!("r{hashes}\"{s}\"{hashes}")
        .parse()
        .expect("a raw string literal")
}

/// The file `vggdsl compile` writes: header, then every model, formatted by prettyplease.
pub fn file(nets: &[Architecture], origin: &Origin) -> String {
    let items: TokenStream = nets.iter().map(|n| tokens(n, origin)).collect();
    let syntax: syn::File = syn::parse2(items).expect("generated code is valid Rust");
    let from = origin.file.as_deref().unwrap_or("vgg!");
    let code = prettyplease::unparse(&syntax);
    // prettyplease packs items together; a blank line after each top-level item reads better.
    let spaced = code.replace("\n}\n", "\n}\n\n");
    format!(
        "{}\n\n{}\n",
        super::header_line(super::RUST_HEADER, from),
        spaced.trim_end_matches('\n')
    )
}
