//! `#[derive(Params)]` (re-exported as `module_kit::Params`): implements `module_kit::Params` for a
//! struct with named fields, so that the intake knows every key the struct accepts without a second
//! list. It reads the same `#[serde(...)]` attributes serde's derive reads: a field's name (or its
//! `rename`), its `alias`es, `skip`/`skip_deserializing`, and `flatten`, whose type's own names are
//! joined in (it must derive `Params` too). A name declared twice is a compile-time error.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Type};

#[proc_macro_derive(Params, attributes(serde))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// What one field contributes.
enum Part {
    Names(Vec<String>),
    Flatten(Type),
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") || meta.path.is_ident("rename_all_fields") {
                return Err(meta.error("derive(Params) does not follow rename_all: rename the fields"));
            }
            skip_value(&meta)
        })?;
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "derive(Params) is for structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "derive(Params) is for structs with named fields",
        ));
    };
    let mut parts = Vec::new();
    for field in &fields.named {
        if let Some(part) = field_part(field)? {
            parts.push(part);
        }
    }
    // Own names first (in declaration order), then each flattened part's.
    let own: Vec<String> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Names(n) => Some(n.clone()),
            Part::Flatten(_) => None,
        })
        .flatten()
        .collect();
    let flattened: Vec<&Type> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Flatten(t) => Some(t),
            Part::Names(_) => None,
        })
        .collect();
    let own_len = own.len();
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::module_kit::params::Params for #name #ty_generics #where_clause {
            const NAMES: &'static [&'static str] = &::module_kit::params::join_names::<
                { #own_len #(+ <#flattened as ::module_kit::params::Params>::NAMES.len())* }
            >(&[&[#(#own),*] #(, <#flattened as ::module_kit::params::Params>::NAMES)*]);
        }
    })
}

fn field_part(field: &syn::Field) -> syn::Result<Option<Part>> {
    let Some(ident) = &field.ident else {
        return Err(syn::Error::new(field.span(), "a field without a name"));
    };
    let mut name = ident.unraw().to_string();
    let mut aliases = Vec::new();
    let mut flatten = false;
    let mut skip = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("flatten") {
                flatten = true;
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                skip = true;
            } else if meta.path.is_ident("alias") {
                aliases.push(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("rename") {
                if meta.input.peek(syn::Token![=]) {
                    name = meta.value()?.parse::<LitStr>()?.value();
                } else {
                    meta.parse_nested_meta(|inner| {
                        let value = inner.value()?.parse::<LitStr>()?.value();
                        if inner.path.is_ident("deserialize") {
                            name = value;
                        }
                        Ok(())
                    })?;
                }
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(match (skip, flatten) {
        (true, _) => None,
        (false, true) => Some(Part::Flatten(field.ty.clone())),
        (false, false) => {
            let mut names = vec![name];
            names.extend(aliases);
            Some(Part::Names(names))
        }
    })
}

/// Consumes whatever follows an attribute this derive does not read (`= value` or `(...)`).
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}
