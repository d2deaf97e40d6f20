//! `vggdsl summary --flops` and `--count hrank` on the command line: every figure comes with the
//! convention it is counted by, in the table and in the JSON (`"convention": {"name", "text"}`).
//! The figures themselves are checked by hand in vggdsl/tests/counting.rs.
use serde_json::Value;
use std::process::{Command, Output};

mod common;
use common::repo;

fn vggdsl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vggdsl"))
        .args(args)
        .output()
        .expect("the vggdsl binary runs")
}

fn json(args: &[&str]) -> Value {
    let out = vggdsl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn hrank_count_as_json() {
    let pruned = repo("examples/hrank_vgg16_pruned.vgg");
    let doc = json(&["summary", "--json", "--count", "hrank", &pruned]);
    assert_eq!(doc["convention"]["name"], "hrank");
    let text = doc["convention"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("HRank's counting (its get_flops.py)"),
        "{text}"
    );
    let m = &doc["models"][0];
    assert_eq!(m["name"], "Vgg16BnHrank");
    assert_eq!(
        (&m["params"], &m["flops"]),
        (&2_923_064.into(), &109_090_314.into())
    );
    assert_eq!(
        m["unpruned"],
        serde_json::json!({"params": 14_982_474, "flops": 313_464_330})
    );
    assert_eq!(
        m["layers"][0],
        serde_json::json!({
            "name": "features.conv0",
            "kind": "Conv2d",
            "filters": {"kept": 4, "of": 64},
            "params": 112,
            "flops": 110_592,
        })
    );
}

#[test]
fn flops_beside_every_macs_figure() {
    let pruned = repo("examples/hrank_vgg16_pruned.vgg");
    let doc = json(&["summary", "--json", "--flops", &pruned]);
    assert_eq!(doc["convention"]["name"], "exact");
    let text = doc["convention"]["text"].as_str().unwrap();
    assert!(text.contains("FLOPs = 2 × MACs"), "{text}");
    let m = &doc["models"][0];
    assert_eq!(m["flops"], 2 * 41_118_332);
    assert_eq!(m["unpruned"]["flops"], 2 * 313_463_808_u64);
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(l["flops"], 2 * l["macs"].as_u64().unwrap(), "{l}");
    }
    // Without --flops there are none, and the convention says so.
    let plain = json(&["summary", "--json", &pruned]);
    assert!(plain["models"][0].get("flops").is_none());
    assert!(!plain["convention"]["text"]
        .as_str()
        .unwrap()
        .contains("FLOPs"));
}

#[test]
fn tables_name_their_convention() {
    let seed = repo("examples/vgg16_bn.vgg");
    let out = vggdsl(&["summary", "--count", "hrank", &seed]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("Vgg16Bn (HRank's counting)\n"));
    assert!(table.contains("\nParams:                 14,982,474\n"));
    assert!(table.contains("\nFLOPs:                  313,464,330\n"));
    assert!(table.ends_with("and all its parameters)\n"));

    let out = vggdsl(&["summary", "--flops", &seed]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("\nFLOPs:                  626,927,616\n"));
    assert!(table.ends_with("; FLOPs = 2 × MACs, a multiply and an add each)\n"));
}

#[test]
fn flops_with_the_hrank_count_is_a_usage_error() {
    let out = vggdsl(&[
        "summary",
        "--flops",
        "--count",
        "hrank",
        &repo("examples/vgg16_bn.vgg"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --flops adds FLOPs to the exact count; --count hrank prints HRank's own FLOPs \
         without it\n"
    );
}

/// HRankPlus's README: params and FLOPs of its three pruned VGG-16-BN models, as printed (M, two
/// decimals). thop's counts, worked by hand for the first: the convs keep 50, 50, 101, 101, 202,
/// 202, 202, 128 × 5 and 512 filters; their MACs (130,299,264), one bias op per output element
/// (202,112), two BatchNorm ops per element (404,224 + 1,024) and the Linears (267,264).
#[test]
fn hrankplus_count_gives_hrankpluss_published_figures() {
    let doc = json(&[
        "summary",
        "--json",
        "--count",
        "hrankplus",
        &repo("examples/hrankplus_vgg16.vgg"),
    ]);
    assert_eq!(doc["convention"]["name"], "hrankplus");
    let published = [
        ("Vgg16HrankPlus1", "2.76", "131.17", 2_761_397, 131_173_888),
        ("Vgg16HrankPlus2", "2.50", "104.78", 2_500_859, 104_781_568),
        ("Vgg16HrankPlus3", "1.90", "66.95", 1_897_408, 66_950_272),
    ];
    let models = doc["models"].as_array().unwrap();
    assert_eq!(models.len(), published.len());
    for (m, (name, params_m, flops_m, params, flops)) in models.iter().zip(published) {
        assert_eq!(m["name"], name);
        assert_eq!((&m["params"], &m["flops"]), (&params.into(), &flops.into()));
        let millions = |v: &Value| format!("{:.2}", v.as_f64().unwrap() / 1e6);
        assert_eq!(
            (millions(&m["params"]), millions(&m["flops"])),
            (params_m.to_owned(), flops_m.to_owned()),
            "{name}"
        );
        // The unpruned network: 14.98M params, as published; thop's FLOPs count bias and
        // BatchNorm, so they are not the 313.73M HRankPlus copies from HRank's paper.
        assert_eq!(
            m["unpruned"],
            serde_json::json!({"params": 14_982_474, "flops": 314_294_272})
        );
    }
    let first = &models[0]["layers"];
    assert_eq!(
        first[0],
        serde_json::json!({
            "name": "features.conv0",
            "kind": "Conv2d",
            "filters": {"kept": 50, "of": 64},
            "params": 1_400,
            "flops": 50 * 32 * 32 * (3 * 9 + 1),
        })
    );
    assert_eq!(first[1]["flops"], 2 * 50 * 32 * 32);
    assert_eq!(first[1]["params"], 0);
}
