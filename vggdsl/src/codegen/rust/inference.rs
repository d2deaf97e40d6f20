//! The generated `…Inference` struct and `to_inference`: BatchNorm folded, ReLU fused, conv
//! kernels chosen per batch size at run time, as [`ir::fusions`] groups the layers.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::{head, ident, layer_type, visibility};
use crate::ir::{self, Architecture, Layer, LayerKind};
use crate::names;

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
pub(super) fn inference(net: &Architecture) -> TokenStream {
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
         channels-last maps, each conv running the kernel measured fastest on this machine \
         for its batch size (oneDNN's fused conv + ReLU, Winograd's form or one matrix product; \
         [`vggdsl_runtime::inference`]), and large maps reused from pass to pass \
         ([`vggdsl_runtime::memory::Arena`]). Built by [`{}::to_inference`] from the model's current \
         weights.",
        spec.name, spec.name
    );
    quote! {
        #[doc = #doc]
        #[derive(Debug)]
        #vis struct #ty {
            #(#vis #fields: #types,)*
            activations: ::vggdsl_runtime::memory::Arena,
        }

        impl #name {
            /// The inference model, built from the current weights and running statistics; its
            /// outputs equal `forward_t(xs, false)` up to float rounding.
            pub fn to_inference(&self) -> #ty {
                use ::vggdsl_runtime::inference::{ConvReLU2d, FusedLinear};
                let (#f, #c) = (&self.#f_field, &self.#c_field);
                #ty {
                    #(#fields: #builds,)*
                    activations: ::vggdsl_runtime::memory::Arena::new(),
                }
            }
        }

        impl #ty {
            /// The arena its passes take their large maps from: what it holds between passes.
            pub fn activations(&self) -> &::vggdsl_runtime::memory::Arena {
                &self.activations
            }

            /// Inference forward pass; no gradients are recorded.
            pub fn forward(&self, xs: &::vggdsl_runtime::tch::Tensor) -> ::vggdsl_runtime::tch::Tensor {
                let _guard = ::vggdsl_runtime::tch::no_grad_guard();
                let _pass = self.activations.pass();
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
