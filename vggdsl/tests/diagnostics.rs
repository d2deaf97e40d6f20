//! Bad inputs and the diagnostics they give: each one a snapshot of the rendered text (reviewed by
//! hand: the caret sits under the offending text, the sentence says what is wrong) and an explicit
//! line:col for every diagnostic.

#[path = "diagnostics/limits.rs"]
mod limits;
#[path = "diagnostics/render.rs"]
mod render;

use render::diagnose;

/// `bad!(name, source, (line, col), …)`: a test asserting the locations and the snapshot.
macro_rules! bad {
    ($name:ident, $src:expr, $(($line:expr, $col:expr)),+ $(,)?) => {
        #[test]
        fn $name() {
            let src: &str = $src;
            let rendered = diagnose(src, &[$(($line, $col)),+]);
            insta::with_settings!({ description => src, omit_expression => true }, {
                insta::assert_snapshot!(rendered);
            });
        }
    };
}

// --- keys and models -----------------------------------------------------------------------

bad!(
    unknown_key_with_suggestion,
    "model A {\n    cfg = default\n    bm = true\n}\n",
    (3, 5)
);

bad!(
    unknown_key_without_suggestion,
    "model A {\n    colour = red\n}\n",
    (2, 5)
);

bad!(
    unknown_key_in_compact_form,
    "pub Vgg<cfg = vgg16, batchnorm = true>\n",
    (1, 22)
);

bad!(
    duplicate_key,
    "model A {\n    bn = true\n    bn = false\n}\n",
    (3, 5)
);

bad!(
    duplicate_model,
    "model A { cfg = vgg11 }\nmodel A { cfg = vgg13 }\n",
    (2, 7)
);

bad!(
    rust_keyword_as_model_name,
    "model struct { cfg = default }\n",
    (1, 7)
);

bad!(
    rust_keyword_in_compact_form,
    "pub fn<cfg = vgg11>\n",
    (1, 5)
);

bad!(
    reserved_keyword_as_model_name,
    "model yield { cfg = vgg11 }\n",
    (1, 7)
);

bad!(
    generated_struct_names_clash,
    "model Net {}\nmodel NetFeatures { cfg = vgg11 }\n",
    (2, 7)
);

bad!(
    visibility_path_must_start_at_crate,
    "pub(in models) model A {}\n",
    (1, 1)
);

bad!(
    visibility_path_with_keyword,
    "pub(in crate::fn) model A {}\n",
    (1, 1)
);

bad!(
    visibility_path_with_misplaced_super,
    "pub(in crate::a::super) model A {}\n",
    (1, 1)
);

bad!(empty_file, "", (1, 1));

bad!(comments_only, "// nothing but a comment\n", (1, 1));

// --- cfg -------------------------------------------------------------------------------------

bad!(empty_cfg, "model A { cfg = [] }\n", (1, 17));

bad!(cfg_without_conv, "model A { cfg = [M, 512] }\n", (1, 17));

bad!(
    cfg_with_only_the_classifier_width,
    "model A { cfg = [512] }\n",
    (1, 17)
);

bad!(
    last_cfg_entry_is_pool,
    "model A { cfg = [64, M, 128, M] }\n",
    (1, 30)
);

bad!(width_zero, "model A { cfg = [64, 0, 512] }\n", (1, 22));

bad!(
    width_absurdly_large,
    "model A { cfg = [64, 100000, 512] }\n",
    (1, 22)
);

bad!(
    width_overflows_64_bits,
    "model A { cfg = [64, 99999999999999999999, 512] }\n",
    (1, 22)
);

bad!(float_width, "model A { cfg = [64, 64.5, 512] }\n", (1, 22));

bad!(
    exponent_width,
    "model A { cfg = [64, 1e3, 512] }\n",
    (1, 22)
);

bad!(lowercase_m, "model A { cfg = [64, m, 128] }\n", (1, 22));

bad!(word_in_cfg, "model A { cfg = [64, pool, 128] }\n", (1, 22));

bad!(
    unknown_preset_with_suggestion,
    "model A { cfg = vgg61 }\n",
    (1, 17)
);

bad!(
    unknown_preset_without_suggestion,
    "model A { cfg = resnet50 }\n",
    (1, 17)
);

bad!(
    repeat_count_too_large,
    "model A { cfg = [64] * 20000 + [512] }\n",
    (1, 24)
);

bad!(
    pool_below_one_pixel,
    "model A {\n    input = [3, 4, 4]\n    cfg = [64, M, 64, M, 64, M, 512]\n}\n",
    (3, 30)
);

bad!(
    pool_below_one_pixel_for_the_default_input,
    "model A {\n    cfg = [8, M, M, M, M, M, M, 16]\n}\n",
    (2, 30)
);

bad!(
    head_below_one_pixel,
    "model A {\n    input = [3, 8, 8]\n    cfg = [64, M, 64, M, 64, M, 512]\n}\n",
    (3, 11)
);

bad!(
    sizes_overflow,
    "model A {\n    input = [3, 16384, 16384]\n    cfg = [65536, 65536, 65536, 8]\n}\n",
    (3, 11)
);

// --- input, bn, num_classes ----------------------------------------------------------------------

bad!(input_wrong_arity, "model A { input = [3, 32] }\n", (1, 19));

bad!(
    input_zero_height,
    "model A { input = [3, 0, 32] }\n",
    (1, 23)
);

bad!(input_not_a_list, "model A { input = 32 }\n", (1, 19));

bad!(bn_not_a_boolean, "model A { bn = 1 }\n", (1, 16));

bad!(num_classes_zero, "model A { num_classes = 0 }\n", (1, 25));

bad!(round_to_zero, "model A { round_to = 0 }\n", (1, 22));

bad!(round_to_decimal, "model A { round_to = 1.5 }\n", (1, 22));

bad!(round_to_word, "model A { round_to = yes }\n", (1, 22));

bad!(
    round_to_too_large,
    "model A { round_to = 65537 }\n",
    (1, 22)
);

bad!(
    num_classes_integer_overflow,
    "model A { num_classes = 99999999999999999999 }\n",
    (1, 25)
);

// --- compress_rate ---------------------------------------------------------------------------

bad!(
    rate_above_one,
    "model A {\n    cfg = vgg11\n    compress_rate = [1.2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]\n}\n",
    (3, 22)
);

bad!(
    rate_negative,
    "model A {\n    cfg = vgg11\n    compress_rate = [-0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]\n}\n",
    (3, 22)
);

bad!(
    rate_of_one,
    "model A {\n    cfg = vgg11\n    compress_rate = [0.5] * 7 + [1]\n}\n",
    (3, 34)
);

bad!(
    rate_leaves_no_channels,
    "model A {\n    cfg = [64, 2, 512]\n    compress_rate = [0.5, 0.6]\n}\n",
    (3, 27)
);

bad!(
    rate_leaves_no_channels_in_a_repeated_term,
    "model A {\n    cfg = [64, 64, M, 1, 512]\n    compress_rate = [0.5] * 3\n}\n",
    (3, 22)
);

bad!(
    rate_count_mismatch,
    "model A {\n    cfg = default\n    compress_rate = [0.5] * 5\n}\n",
    (3, 21)
);

bad!(
    rate_float_overflow,
    "model A {\n    cfg = vgg11\n    compress_rate = [1e999] + [0.5] * 7\n}\n",
    (3, 22)
);

bad!(
    rate_word,
    "model A {\n    cfg = vgg11\n    compress_rate = [half] + [0.5] * 7\n}\n",
    (3, 22)
);

// --- init ------------------------------------------------------------------------------------

bad!(init_unknown_word, "model A { init = kaiming }\n", (1, 18));

bad!(
    init_unknown_layer_kind,
    "model A {\n    init = {\n        batchnorm.weight = constant(1)\n    }\n}\n",
    (3, 9)
);

bad!(
    init_unknown_tensor,
    "model A {\n    init = {\n        conv.weights = normal(0, 0.01)\n    }\n}\n",
    (3, 14)
);

bad!(
    init_running_stats_are_not_initialised,
    "model A {\n    init = {\n        norm2d.running_var = constant(1)\n    }\n}\n",
    (3, 16)
);

bad!(
    init_unknown_distribution,
    "model A {\n    init = {\n        conv.weight = gaussian(0, 0.01)\n    }\n}\n",
    (3, 23)
);

bad!(
    init_wrong_arity,
    "model A {\n    init = {\n        linear.weight = normal(0.01)\n    }\n}\n",
    (3, 25)
);

bad!(
    init_unknown_variable,
    "model A {\n    init = {\n        conv.weight = normal(0, sqrt(2 / fanout))\n    }\n}\n",
    (3, 42)
);

bad!(
    init_unknown_function,
    "model A {\n    init = {\n        conv.weight = normal(0, exp(2))\n    }\n}\n",
    (3, 33)
);

bad!(
    init_sqrt_arity,
    "model A {\n    init = {\n        conv.weight = normal(0, sqrt(2, 3))\n    }\n}\n",
    (3, 33)
);

bad!(
    init_norm2d_rule_without_bn,
    "model A {\n    bn = false\n    init = {\n        norm2d.weight = constant(1)\n    }\n}\n",
    (4, 9)
);

bad!(
    init_duplicate_rule,
    "model A {\n    init = {\n        conv.bias = constant(0)\n        conv.bias = constant(0.1)\n    }\n}\n",
    (4, 9)
);

bad!(
    init_float_overflow,
    "model A {\n    init = { linear.weight = normal(0, 1e999) }\n}\n",
    (2, 40)
);

bad!(
    init_integer_overflow,
    "model A {\n    init = { linear.bias = constant(123456789012345678901234567890) }\n}\n",
    (2, 37)
);

bad!(
    init_division_by_zero,
    "model A {\n    init = {\n        conv.weight = normal(0, sqrt(2 / (k - 3)))\n    }\n}\n",
    (3, 9)
);

bad!(
    init_negative_std,
    "model A {\n    init = {\n        linear.weight = normal(0, -0.01)\n    }\n}\n",
    (3, 9)
);

bad!(
    init_uniform_bounds_reversed,
    "model A {\n    init = {\n        linear.weight = uniform(1 / sqrt(in), -1 / sqrt(in))\n    }\n}\n",
    (3, 9)
);

// --- syntax ----------------------------------------------------------------------------------

bad!(
    syntax_missing_equals,
    "model A {\n    cfg default\n}\n",
    (2, 9)
);

bad!(
    syntax_unclosed_bracket,
    "model A {\n    cfg = [64, M, 128\n}\n",
    (3, 1)
);

bad!(
    syntax_unclosed_brace_at_the_end,
    "model A {\n    cfg = default\n",
    (1, 9)
);

bad!(syntax_stray_token, "model A { cfg = default @ }\n", (1, 25));

bad!(
    syntax_stray_closing_brace,
    "model A { cfg = default } }\n",
    (1, 27)
);

bad!(
    syntax_missing_comma_in_list,
    "model A { cfg = [64 128, 512] }\n",
    (1, 21)
);

bad!(syntax_missing_value, "model A { cfg = }\n", (1, 17));

bad!(
    syntax_missing_model_name,
    "model { cfg = default }\n",
    (1, 7)
);

bad!(
    syntax_missing_comma_in_compact_form,
    "Vgg<cfg = default bn = true>\n",
    (1, 19)
);

bad!(
    syntax_repeat_not_an_integer,
    "model A { cfg = [64, 512] * 2.5 }\n",
    (1, 29)
);

bad!(
    syntax_missing_argument_separator,
    "model A {\n    init = { conv.bias = uniform(0 1) }\n}\n",
    (2, 36)
);

bad!(
    syntax_rule_without_tensor,
    "model A {\n    init = { conv = normal(0, 1) }\n}\n",
    (2, 19)
);

bad!(
    syntax_bad_visibility,
    "pub(foo) model A { cfg = default }\n",
    (1, 5)
);

bad!(
    syntax_unterminated_block_comment,
    "model A { cfg = default }\n/* the end\n",
    (2, 1)
);

bad!(
    syntax_model_keyword_with_compact_form,
    "model NoBn<cfg = vgg16, bn = false>\n",
    (1, 11)
);

bad!(
    syntax_missing_model_after_visibility,
    "pub(crate)\n",
    (1, 11)
);

bad!(
    syntax_unmatched_closing_bracket,
    "model A { cfg = [64, 512]] }\n",
    (1, 26)
);

bad!(
    syntax_number_with_suffix,
    "model A { cfg = [64u8, 512] }\n",
    (1, 18)
);

bad!(
    syntax_unicode_in_name,
    "model Vgg✓ { cfg = default }\n",
    (1, 10)
);

bad!(
    syntax_tab_indentation,
    "model A {\n\tcfg = [64, M,, 512]\n}\n",
    (2, 15)
);

// --- several errors at once --------------------------------------------------------------------

bad!(
    several_independent_errors,
    "model A {\n    cfg = [64, m, 512]\n    bn = yes\n    num_classes = 0\n    colour = red\n}\n",
    (2, 16),
    (3, 10),
    (4, 19),
    (5, 5)
);

bad!(
    errors_in_two_models,
    "model A { cfg = vgg61 }\nmodel B {\n    cfg = vgg11\n    compress_rate = [0.5] * 3\n}\n",
    (1, 17),
    (4, 21)
);

bad!(
    several_init_errors,
    "model A {\n    init = {\n        conv.weigth = normal(0, 0.01)\n        lin.bias = constant(0)\n        norm2d.weight = konstant(1)\n    }\n}\n",
    (3, 14),
    (4, 9),
    (5, 25)
);

// --- text that is not ASCII --------------------------------------------------------------------

bad!(
    non_ascii_name_points_at_its_first_letter,
    "model réseau { cfg = default }\n",
    (1, 8)
);

// The caret sits under `bnn`, two columns further right for each wide character before it.
bad!(
    carets_line_up_after_wide_characters,
    "model A {\n    /* 网络 */ cfg = [64, M, 8] bnn = true\n}\n",
    (2, 31)
);

// A byte-order mark is no column: the error is at 1:17, as an editor shows it.
bad!(
    byte_order_mark_counts_no_column,
    "\u{feff}model A { cfg = [] }\n",
    (1, 17)
);

// --- the train block -----------------------------------------------------------------------------

bad!(
    train_unknown_key,
    "model A {\n    train { epoch = 10 }\n}\n",
    (2, 13)
);

bad!(
    train_written_as_a_setting,
    "model A {\n    train = { epochs = 10 }\n}\n",
    (2, 5)
);

bad!(
    train_twice,
    "model A {\n    train { epochs = 10 }\n    train { lr = 0.1 }\n}\n",
    (3, 5)
);

bad!(
    train_milestones_must_increase,
    "model A {\n    train { epochs = 30 milestones = [10, 5] }\n}\n",
    (2, 43)
);

bad!(
    train_milestone_past_the_last_epoch,
    "model A {\n    train { epochs = 30 milestones = [10, 40] }\n}\n",
    (2, 43)
);

bad!(
    train_cosine_has_no_milestones,
    "model A {\n    train { schedule = cosine gamma = 0.5 }\n}\n",
    (2, 39)
);

bad!(
    train_nesterov_needs_momentum,
    "model A {\n    train { momentum = 0 nesterov = true }\n}\n",
    (2, 37)
);

bad!(
    train_lr_must_be_positive,
    "model A {\n    train { lr = 0 }\n}\n",
    (2, 18)
);

bad!(
    train_unknown_recipe,
    "model A {\n    train { recipe = hrankplsu }\n}\n",
    (2, 22)
);
