//! Checked network to Rust source for tch: one struct per Sequential, straight-line forward code,
//! PyTorch names everywhere. Every front door (CLI, build.rs helper, `vgg!`) calls `tokens`.

use super::{model_doc, shape_text, Origin};
use crate::analysis::{self, thousands};
use crate::init::{self, Op};
use crate::ir::{self, Layer, LayerKind, Network};
use crate::names;
use crate::spec::CfgItem;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

/// The items of one model: structs, constructor, init, forward passes, repr.
pub fn tokens(net: &Network, origin: &Origin) -> TokenStream {
    let spec = &net.spec;
    let name = ident(&spec.name);
    let vis = visibility(net);
    let features_ty = ident(&names::features_type(&spec.name));
    let classifier_ty = ident(&names::classifier_type(&spec.name));
    let activations_ty = ident(&names::activations_type(&spec.name));
    let summary = analysis::summarize(net);

    let struct_doc = doc_lines(&model_doc(net, origin, &summary));
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
    let feature_inits = constructors(&net.features, features);
    let classifier_inits = constructors(&net.classifier, classifier);

    let tap_names: Vec<Ident> = net
        .relu_cfg
        .iter()
        .map(|&i| ident(&net.features[i].name))
        .collect();
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

    // A model with one conv has no tap point: nothing to collect, and `tap` goes unused.
    let (collect_taps, tap_param) = if tap_names.is_empty() {
        (
            quote! { (self.forward_tapped(xs, train, |_| {}), #activations_ty {}) },
            quote!(_tap),
        )
    } else {
        let count = Literal::usize_unsuffixed(tap_names.len());
        let collect = quote! {
            let mut maps = ::std::vec::Vec::with_capacity(#count);
            let ys = self.forward_tapped(xs, train, |xs| maps.push(xs.shallow_clone()));
            let mut maps = maps.into_iter();
            let mut next = || maps.next().expect("one map per RELU_CFG point");
            (ys, #activations_ty { #(#tap_names: next()),* })
        };
        (collect, quote!(mut tap))
    };
    let consts = constants(net, &summary);
    let init_fn = init_fn(net);
    let uses = runtime_imports(net);
    let build = quote! {
        Self {
            #f_field: #features_ty { #(#feature_inits)* },
            #c_field: #classifier_ty { #(#classifier_inits)* },
        }
    };
    let construct = if net.spec.init.is_empty() {
        build
    } else {
        quote! {
            let mut net = #build;
            net.init();
            net
        }
    };
    let forward = forward_body(net);
    let repr = raw_string(&crate::repr::network(net));
    let inference = inference(net);

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

        impl #name {
            #consts

            /// PyTorch's `print(net)` for this model.
            pub const REPR: &'static str = #repr;

            /// Creates every variable under `p` with its PyTorch `state_dict` name, drawing PyTorch's
            /// default initialisation in construction order, then applies the model's init rules.
            pub fn new(p: &::vggdsl_runtime::tch::nn::Path) -> Self {
                use ::vggdsl_runtime::nn::{#(#uses),*};
                let #f_field = p / #features;
                let #c_field = p / #classifier;
                #construct
            }

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

        #inference
    }
}

/// One layer of the inference model: its field, type, how it is built and how it runs.
struct Fused {
    name: Ident,
    ty: TokenStream,
    build: TokenStream,
    call: TokenStream,
}

/// The inference layers of one Sequential (`section` is the local that holds it), grouped by
/// [`ir::fusions`].
fn fused(layers: &[Layer], section: &Ident) -> Vec<Fused> {
    ir::fusions(layers)
        .into_iter()
        .map(|f| {
            let l = &layers[f.layer];
            let name = ident(&l.name);
            let norm = match f.norm {
                Some(n) => {
                    let n = ident(&layers[n].name);
                    quote!(Some(&#section.#n))
                }
                None => quote!(None),
            };
            let (ty, build) = match l.kind {
                LayerKind::Conv2d { .. } => (
                    quote!(::vggdsl_runtime::inference::ConvReLU2d),
                    quote!(ConvReLU2d::new(&#section.#name, #norm)),
                ),
                LayerKind::Linear { .. } => {
                    let relu = f.relu;
                    (
                        quote!(::vggdsl_runtime::inference::FusedLinear),
                        quote!(FusedLinear::new(&#section.#name, #norm, #relu)),
                    )
                }
                _ => {
                    let ty = ident(layer_type(&l.kind));
                    (quote!(::vggdsl_runtime::nn::#ty), quote!(#section.#name))
                }
            };
            let call = quote!(self.#name.forward(&xs));
            Fused {
                name,
                ty,
                build,
                call,
            }
        })
        .collect()
}

/// The inference model: BatchNorm folded, ReLU fused, conv kernels chosen per batch size.
fn inference(net: &Network) -> TokenStream {
    let spec = &net.spec;
    let name = ident(&spec.name);
    let vis = visibility(net);
    let ty = ident(&names::inference_type(&spec.name));
    let (f, c) = (ident("f"), ident("c"));
    let features = fused(&net.features, &f);
    let classifier = fused(&net.classifier, &c);
    let fields: Vec<&Ident> = features
        .iter()
        .chain(&classifier)
        .map(|l| &l.name)
        .collect();
    let types = features.iter().chain(&classifier).map(|l| &l.ty);
    let builds = features.iter().chain(&classifier).map(|l| &l.build);
    let feature_calls = features.iter().map(|l| &l.call);
    let mut classifier_calls: Vec<&TokenStream> = classifier.iter().map(|l| &l.call).collect();
    let last = classifier_calls.pop().expect("the classifier has layers");
    let head = head(net);
    let (f_field, c_field) = (ident(names::FEATURES), ident(names::CLASSIFIER));
    let doc = format!(
        " [`{}`] for inference: each BatchNorm folded into the layer before it, ReLU fused, \
         channels-last maps, and each conv running the kernel measured fastest on this machine \
         for its batch size (oneDNN's fused conv + ReLU, Winograd's form or one matrix product; \
         [`vggdsl_runtime::inference`]). Built by [`{}::to_inference`] from the model's current \
         weights.",
        spec.name, spec.name
    );
    quote! {
        #[doc = #doc]
        #[derive(Debug)]
        #vis struct #ty {
            #(#vis #fields: #types,)*
        }

        impl #name {
            /// The inference model, built from the current weights and running statistics; its
            /// outputs equal `forward_t(xs, false)` up to float rounding.
            pub fn to_inference(&self) -> #ty {
                use ::vggdsl_runtime::inference::{ConvReLU2d, FusedLinear};
                let (#f, #c) = (&self.#f_field, &self.#c_field);
                #ty {
                    #(#fields: #builds,)*
                }
            }
        }

        impl #ty {
            /// Inference forward pass; no gradients are recorded.
            pub fn forward(&self, xs: &::vggdsl_runtime::tch::Tensor) -> ::vggdsl_runtime::tch::Tensor {
                let _guard = ::vggdsl_runtime::tch::no_grad_guard();
                let mut xs = ::vggdsl_runtime::inference::enter(xs);
                #(xs = #feature_calls;)*
                xs = #head.forward(&xs);
                xs = ::vggdsl_runtime::inference::leave(xs).flatten(1, -1);
                #(xs = #classifier_calls;)*
                #last
            }
        }

        impl ::vggdsl_runtime::tch::nn::Module for #ty {
            fn forward(&self, xs: &::vggdsl_runtime::tch::Tensor) -> ::vggdsl_runtime::tch::Tensor {
                #ty::forward(self, xs)
            }
        }
    }
}

/// The head between the Sequentials: the seed's `nn.AvgPool2d` (flattening follows).
fn head(net: &Network) -> TokenStream {
    let (k, s) = (int(net.head.kernel), int(net.head.stride));
    quote!(::vggdsl_runtime::nn::AvgPool2d::new(#k, #s))
}

/// The model's visibility as written (`pub`, `pub(crate)`, …), for every generated item.
fn visibility(net: &Network) -> TokenStream {
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
fn runtime_imports(net: &Network) -> Vec<Ident> {
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

fn constants(net: &Network, s: &analysis::Summary) -> TokenStream {
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
fn init_fn(net: &Network) -> Option<TokenStream> {
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
fn forward_body(net: &Network) -> TokenStream {
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
pub fn file(nets: &[Network], origin: &Origin) -> String {
    let items: TokenStream = nets.iter().map(|n| tokens(n, origin)).collect();
    let syntax: syn::File = syn::parse2(items).expect("generated code is valid Rust");
    let from = origin.file.as_deref().unwrap_or("vgg!");
    let code = prettyplease::unparse(&syntax);
    // prettyplease packs items together; a blank line after each top-level item reads better.
    let spaced = code.replace("\n}\n", "\n}\n\n");
    format!(
        "{} by vggdsl from {from}. Do not edit.\n\n{}",
        crate::GENERATED_HEADER,
        spaced.trim_end_matches('\n').to_owned() + "\n"
    )
}
