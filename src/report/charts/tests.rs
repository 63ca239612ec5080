use super::axis::*;
use super::style::*;
use super::svg::*;
use super::*;
use indexmap::IndexMap;

/// One element's start tag: its name, attributes and (for text) content.
#[derive(Debug)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

impl El {
    fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn num(&self, name: &str) -> f64 {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} of {self:?}"))
    }
}

/// Every start or empty tag, in order.
fn elements(svg: &str) -> Vec<El> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with(['/', '?', '!']) {
            continue;
        }
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().unwrap_or_default();
        let text = rest[..rest.find('<').unwrap_or(rest.len())]
            .trim()
            .to_string();
        out.push(El {
            name: name.to_string(),
            attrs: attributes(&tag[name.len()..])
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            text,
        });
    }
    out
}

/// Tags balance, the document is standalone SVG on white, every text
/// names its font, every '&' starts an entity, and no number is NaN or
/// infinite.
fn assert_well_formed(svg: &str) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        assert!(!rest[..start].contains('>'), "stray '>' in {svg}");
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "in {svg}");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or_default());
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert!(rest.trim().is_empty(), "text after </svg>: {rest:?}");
    for (i, _) in svg.match_indices('&') {
        let entity = &svg[i..svg.len().min(i + 6)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "bare '&' at {entity:?}"
        );
    }
    let els = elements(svg);
    let root = &els[0];
    assert_eq!(root.name, "svg");
    assert_eq!(root.get("xmlns"), Some("http://www.w3.org/2000/svg"));
    let (w, h) = (root.num("width"), root.num("height"));
    assert_eq!(root.get("viewBox"), Some(format!("0 0 {w} {h}").as_str()));
    let bg = &els[1];
    assert_eq!(bg.name, "rect", "the background first");
    assert_eq!((bg.num("width"), bg.num("height")), (w, h));
    assert_eq!(bg.get("fill"), Some("#FFFFFF"));
    for e in &els {
        if e.name == "text" {
            assert!(e.get("font-family").is_some(), "{e:?}");
        }
        for (k, v) in &e.attrs {
            let lower = v.to_ascii_lowercase();
            assert!(
                !lower.contains("nan") && !lower.contains("inf"),
                "{k}={v} in {e:?}"
            );
            if matches!(k.as_str(), "points" | "d") {
                assert!(!v.trim().is_empty(), "empty {k} in {e:?}");
            }
        }
    }
}

/// The tick labels plotters drew: (x axis, y axis).
fn ticks(svg: &str) -> (Vec<String>, Vec<String>) {
    let size = format!("{}", TICK_FONT / 1.24);
    let els = elements(svg);
    let of = |anchor: &str| {
        els.iter()
            .filter(|e| e.name == "text" && e.get("font-size") == Some(size.as_str()))
            .filter(|e| e.get("text-anchor") == Some(anchor))
            .map(|e| e.text.clone())
            .collect::<Vec<_>>()
    };
    (of("middle"), of("end"))
}

fn assert_unique(labels: &[String]) {
    let mut sorted = labels.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), labels.len(), "repeated labels in {labels:?}");
}

fn line(label: &str, points: Vec<(f64, f64)>, predicted: bool) -> Line {
    Line {
        label: label.into(),
        points,
        predicted,
    }
}

fn scaling(
    dimension: &str,
    fixed: (&str, &str),
    points: &[(f64, f64, f64)],
    predicted: bool,
) -> ScalingSeries {
    let mut f = IndexMap::new();
    f.insert(fixed.0.to_string(), fixed.1.to_string());
    ScalingSeries {
        dimension: dimension.into(),
        fixed: f,
        points: points.to_vec(),
        predicted,
    }
}

/// Four lines of RPS against replicas, the last a prediction; p95
/// against users for two replica counts, spanning 200 times.
fn analysis() -> Analysis {
    let r = |users: f64, rps: [f64; 4]| -> Vec<(f64, f64, f64)> {
        (0..4)
            .map(|i| (i as f64 + 1.0, rps[i], users / (i as f64 + 1.0)))
            .collect()
    };
    Analysis {
        scaling: vec![
            // Listed first, drawn last.
            scaling(
                "replicas",
                ("users", "64"),
                &r(64.0, [380.0, 760.0, 1140.0, 1520.0]),
                true,
            ),
            scaling(
                "replicas",
                ("users", "4"),
                &r(4.0, [366.0, 376.5, 380.0, 381.0]),
                false,
            ),
            scaling(
                "replicas",
                ("users", "16"),
                &r(16.0, [377.5, 757.5, 1100.0, 1240.0]),
                false,
            ),
            scaling(
                "replicas",
                ("users", "64"),
                &r(64.0, [378.0, 750.0, 1080.0, 1300.0]),
                false,
            ),
            scaling(
                "users",
                ("replicas", "1"),
                &[(4.0, 0.0, 2.3), (16.0, 0.0, 22.0), (64.0, 0.0, 480.0)],
                false,
            ),
            scaling(
                "users",
                ("replicas", "2"),
                &[(4.0, 0.0, 2.1), (16.0, 0.0, 9.0), (64.0, 0.0, 130.0)],
                false,
            ),
        ],
        ..Default::default()
    }
}

fn axes() -> Vec<String> {
    vec!["replicas".into(), "users".into()]
}

fn roles() -> Roles {
    Roles::default()
        .with("replicas", Role::Replicas)
        .with("users", Role::Users)
}

#[test]
fn whole_number_axes_get_whole_unique_tick_labels() {
    let cases: Vec<Vec<f64>> = vec![
        vec![1.0, 2.0],
        vec![3.0],
        vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
        vec![4.0, 16.0, 64.0],
        (0..9).map(|k| f64::from(1 << k)).collect(),
        (1..=40).map(f64::from).collect(),
        vec![100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 12800.0],
    ];
    for xs in cases {
        for y_scale in [1.0, 37.0, 4100.0] {
            let pts: Vec<(f64, f64)> = xs
                .iter()
                .enumerate()
                .map(|(i, &x)| (x, y_scale * (i as f64 + 1.0)))
                .collect();
            let svg = svg_line_chart("t", "replicas", "RPS", &[("a".into(), pts)]);
            let (x, y) = ticks(&svg);
            assert!(!x.is_empty() && !y.is_empty(), "{svg}");
            for l in &x {
                assert!(
                    l.parse::<i64>().is_ok() || l.trim_end_matches('k').parse::<i64>().is_ok(),
                    "x label {l:?} for {xs:?}"
                );
            }
            for l in &y {
                assert!(!l.contains('e'), "y label {l:?}");
                assert!(
                    l.trim_end_matches(['k', 'M']).parse::<f64>().is_ok(),
                    "{l:?}"
                );
            }
            assert_unique(&x);
            assert_unique(&y);
        }
    }
    // Few measured values are labelled themselves.
    let svg = svg_line_chart(
        "t",
        "replicas",
        "RPS",
        &[("a".into(), vec![(1.0, 377.5), (2.0, 757.5)])],
    );
    let (x, y) = ticks(&svg);
    assert_eq!(x, ["1", "2"]);
    assert_eq!(y, ["0", "200", "400", "600", "800"]);
    let svg = svg_line_chart(
        "t",
        "users",
        "RPS",
        &[(
            "a".into(),
            vec![(4.0, 9000.0), (16.0, 30000.0), (64.0, 41000.0)],
        )],
    );
    let (x, y) = ticks(&svg);
    assert_eq!(x, ["4", "16", "64"]);
    assert_eq!(y, ["0", "10k", "20k", "30k", "40k", "50k"]);
}

#[test]
fn tick_labels_are_plain_numbers() {
    let l = |v: &[f64]| tick_labels(v);
    assert_eq!(
        l(&[0.0, 2500.0, 5000.0, 7500.0, 10000.0]),
        ["0", "2.5k", "5k", "7.5k", "10k"]
    );
    assert_eq!(
        l(&[0.0, 500.0, 1000.0, 1500.0]),
        ["0", "500", "1000", "1500"]
    );
    assert_eq!(l(&[0.1, 0.2, 0.1 * 3.0]), ["0.1", "0.2", "0.3"]);
    assert_eq!(l(&[2e6, 4e6, 12e6]), ["2M", "4M", "12M"]);
    assert_eq!(l(&[-0.0, 1.0]), ["0", "1"]);
}

#[test]
fn every_line_has_its_own_colour_marker_and_past_the_palette_dashes() {
    let mut lines: Vec<Line> = (0..12)
        .map(|i| {
            let pts = (1..=3)
                .map(|x| (f64::from(x), f64::from(x * (i + 1))))
                .collect();
            line(&format!("users={i}"), pts, false)
        })
        .collect();
    lines.push(line("users=99", vec![(1.0, 5.0), (3.0, 50.0)], true));
    let svg = svg_chart("t", "replicas", "RPS", &lines, false);
    assert_well_formed(&svg);
    let els = elements(&svg);
    let polyline = |i: usize| {
        els.iter()
            .find(|e| e.get("class") == Some(format!("line-{i}").as_str()))
            .unwrap_or_else(|| panic!("no line-{i} in {svg}"))
    };
    // The markers of line i: the elements after its group's start, up to the next group.
    let markers = |i: usize| -> Vec<&El> {
        let start = els
            .iter()
            .position(|e| e.get("class") == Some(format!("markers-{i}").as_str()))
            .unwrap();
        els[start + 1..]
            .iter()
            .take_while(|e| e.name != "g")
            .collect()
    };
    let colours: Vec<&str> = (0..10)
        .map(|i| polyline(i).get("stroke").unwrap())
        .collect();
    assert_unique(&colours.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    for i in 0..10 {
        assert_eq!(polyline(i).get("stroke-dasharray"), None, "line {i}");
    }
    // Past the ten colours, dashes.
    for i in 10..12 {
        assert!(polyline(i).get("stroke-dasharray").is_some(), "line {i}");
        assert_eq!(polyline(i).get("stroke"), Some(colours[i - 10]));
    }
    // A marker at every point, shapes cycling.
    let shape = |e: &El| match e.name.as_str() {
        "polygon" => format!("polygon/{}", e.get("points").unwrap().split(' ').count()),
        n => n.to_string(),
    };
    for i in 0..12 {
        let m = markers(i);
        assert_eq!(m.len(), 3, "markers of line {i}");
        assert!(
            m.iter().all(|e| e.get("fill") != Some("#FFFFFF")),
            "line {i} is filled"
        );
    }
    let shapes: Vec<String> = (0..7).map(|i| shape(markers(i)[0])).collect();
    assert_eq!(
        shapes,
        [
            "circle",
            "rect",
            "polygon/3",
            "polygon/4",
            "polygon/12",
            "polygon/3",
            "polygon/12"
        ]
    );
    assert_ne!(markers(2)[0].get("points"), markers(5)[0].get("points"));
    // The prediction: dashed, hollow markers, named so.
    let p = polyline(12);
    assert_eq!(p.get("stroke-dasharray"), Some(PREDICTED_DASH));
    let m = markers(12);
    assert_eq!(m.len(), 2);
    for e in m {
        assert_eq!(e.get("fill"), Some("#FFFFFF"));
        assert_eq!(e.get("stroke"), p.get("stroke"));
    }
    let legend: Vec<&El> = els.iter().filter(|e| e.name == "text").collect();
    assert_eq!(legend.last().unwrap().text, "users=99 (predicted)");
}

#[test]
fn identical_lines_both_show() {
    let pts = vec![(1.0, 100.0), (2.0, 200.0), (4.0, 390.0)];
    let svg = svg_line_chart(
        "t",
        "replicas",
        "RPS",
        &[("a".into(), pts.clone()), ("b".into(), pts)],
    );
    assert_well_formed(&svg);
    let els = elements(&svg);
    let lines: Vec<&El> = els
        .iter()
        .filter(|e| e.name == "polyline" && e.get("class").is_some())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].get("points"), lines[1].get("points"));
    assert_ne!(lines[0].get("stroke"), lines[1].get("stroke"));
    // The one underneath is wider, so its edges show.
    assert!(lines[0].num("stroke-width") >= lines[1].num("stroke-width") + 1.0);
    // Its circles are bigger than the squares on top of them.
    let circle = els.iter().find(|e| e.name == "circle").unwrap();
    let square = els
        .iter()
        .find(|e| e.name == "rect" && e.get("fill") == lines[1].get("stroke"))
        .unwrap();
    assert!(
        circle.num("r") > square.num("width") / 2.0 * std::f64::consts::SQRT_2,
        "{circle:?} {square:?}"
    );
    // Lines are all drawn before any marker.
    let last_line = els
        .iter()
        .rposition(|e| e.get("class").is_some_and(|c| c.starts_with("line-")))
        .unwrap();
    let first_marker = els
        .iter()
        .position(|e| e.get("class").is_some_and(|c| c.starts_with("markers-")))
        .unwrap();
    assert!(last_line < first_marker);
}

#[test]
fn the_legend_sits_right_of_the_plot() {
    let long = "users=64, workers=4, region=eu-west-1, payload=<large & slow>";
    let mut series: Vec<(String, Vec<(f64, f64)>)> = (0..30)
        .map(|i| {
            (
                format!("users={i}"),
                vec![(1.0, f64::from(i)), (8.0, f64::from(i * 9))],
            )
        })
        .collect();
    series.push((long.to_string(), vec![(1.0, 300.0), (8.0, 2.0)]));
    let svg = svg_line_chart("t", "replicas", "RPS", &series);
    assert_well_formed(&svg);
    let els = elements(&svg);
    let legend_at = els
        .iter()
        .position(|e| e.get("class") == Some("legend"))
        .unwrap();
    let frame = &els[legend_at + 1];
    assert_eq!(frame.name, "rect");
    let (lx, ly, lw, lh) = (
        frame.num("x"),
        frame.num("y"),
        frame.num("width"),
        frame.num("height"),
    );
    // Everything drawn on the plot is left of the legend.
    let mut rightmost = 0.0_f64;
    for e in &els[..legend_at] {
        if let Some(points) = e.get("points") {
            for p in points.split_whitespace() {
                rightmost = rightmost.max(p.split(',').next().unwrap().parse().unwrap());
            }
        }
        for k in ["x", "cx", "x2"] {
            if e.get(k).is_some() && e.get("transform").is_none() && e.name != "rect" {
                rightmost = rightmost.max(e.num(k));
            }
        }
    }
    assert!(
        rightmost + 8.0 < lx,
        "plot reaches {rightmost}, legend starts at {lx}"
    );
    // The drawing holds the whole legend.
    let root = &els[0];
    assert!(
        lx + lw <= root.num("width"),
        "{lx}+{lw} > {}",
        root.num("width")
    );
    assert!(
        ly + lh <= root.num("height"),
        "{ly}+{lh} > {}",
        root.num("height")
    );
    let names: Vec<&str> = els[legend_at..]
        .iter()
        .filter(|e| e.name == "text")
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(names.len(), 31);
    let last = names[30];
    assert_eq!(last, "users=64, workers=4, region=eu-west-1, …");
    assert_eq!(last.chars().count(), LEGEND_CHARS);
    // The legend names keep a prediction's ending.
    let p = line(long, vec![], true);
    assert!(
        p.legend_name().ends_with("… (predicted)"),
        "{}",
        p.legend_name()
    );
    assert_eq!(p.legend_name().chars().count(), LEGEND_CHARS);
}

#[test]
fn latency_spanning_more_than_twenty_times_gets_a_log_axis() {
    let cs = charts(&analysis(), &axes(), &roles());
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["rps-vs-replicas", "p95-vs-users"]);
    let (rps, p95) = (&cs[0], &cs[1]);
    assert!(!rps.log);
    assert!(!rps.svg.contains("(log)"));
    assert!(p95.log);
    assert!(p95.svg.contains(">p95 (ms) (log)</text>"), "{}", p95.svg);
    let (_, y) = ticks(&p95.svg);
    assert_eq!(y, ["2", "5", "10", "20", "50", "100", "200", "500"]);
    // Mermaid has no log axis: its block stays linear, and says nothing of log.
    assert!(
        p95.mermaid.contains("y-axis \"p95 (ms)\" 0 --> "),
        "{}",
        p95.mermaid
    );
    let json = serde_json::to_value(p95).unwrap();
    assert_eq!(json["log"], true);

    // Within twenty times: linear.
    let mut a = analysis();
    for s in &mut a.scaling {
        for p in &mut s.points {
            p.2 = 10.0 + p.2.min(180.0);
        }
    }
    let p95 = &charts(&a, &axes(), &roles())[1];
    assert!(!p95.log);
    assert!(p95.svg.contains(">p95 (ms)</text>"));
    let (_, y) = ticks(&p95.svg);
    assert_eq!(y.first().map(String::as_str), Some("0"));
    assert!(wants_log([1.0, 21.0].into_iter()));
    assert!(!wants_log([1.0, 20.0].into_iter()));
    assert!(!wants_log([0.0, -3.0, 5.0].into_iter()));
    assert!(wants_log([0.0, 0.5, 50.0].into_iter()));
}

#[test]
fn log_axes_leave_out_values_at_or_below_zero() {
    let svg = svg_chart(
        "t",
        "users",
        "p95 (ms) (log)",
        &[line("a", vec![(1.0, 0.0), (2.0, 1.0), (3.0, 300.0)], false)],
        true,
    );
    assert_well_formed(&svg);
    let els = elements(&svg);
    let markers = els
        .iter()
        .take_while(|e| e.get("class") != Some("legend"))
        .filter(|e| e.name == "circle")
        .count();
    assert_eq!(markers, 2);
    let (_, y) = ticks(&svg);
    assert_eq!(y, ["1", "2", "5", "10", "20", "50", "100", "200", "500"]);
}

#[test]
fn svg_is_well_formed_standalone_and_escaped() {
    let mut svgs: Vec<String> = charts(&analysis(), &axes(), &roles())
        .into_iter()
        .map(|c| c.svg)
        .collect();
    svgs.push(svg_line_chart(
        "RPS <&> \"quoted\"",
        "x & y",
        "<y>",
        &[("users=100 <&>".into(), vec![(1.0, 100.0), (2.0, 190.0)])],
    ));
    for odd in [
        vec![],
        vec![("x".to_string(), vec![(1.0, f64::NAN)])],
        vec![("one".to_string(), vec![(3.0, 7.0)])],
        vec![("flat".to_string(), vec![(1.0, 0.0), (2.0, 0.0)])],
        vec![("inf".to_string(), vec![(1.0, f64::INFINITY), (2.0, 3.0)])],
        vec![(
            "extreme".to_string(),
            vec![
                (-1e300, 1e300),
                (1e300, -1e300),
                (0.0, 1e-300),
                (1e-300, 0.0),
            ],
        )],
        vec![(
            "tiny".to_string(),
            vec![(1e15, 1.0), (1e15 + 0.125, 1.0 + 1e-12)],
        )],
    ] {
        svgs.push(svg_line_chart("t", "x", "y", &odd));
    }
    for svg in &svgs {
        assert_well_formed(svg);
    }
    let escaped = &svgs[2];
    assert!(
        escaped.contains(">RPS &lt;&amp;&gt; &quot;quoted&quot;</text>"),
        "{escaped}"
    );
    assert!(escaped.contains(">users=100 &lt;&amp;&gt;</text>"));
    assert!(escaped.contains(">x &amp; y</text>"));
    assert!(escaped.contains(">&lt;y&gt;</text>"));
    // Text needs no dy and no rotate(a, cx, cy), which ImageMagick ignores.
    for svg in &svgs {
        assert!(!svg.contains(" dy="), "{svg}");
        assert!(!svg.contains("rotate(270,"), "{svg}");
    }
}

#[test]
fn mermaid_lists_predictions_last() {
    let cs = charts(&analysis(), &axes(), &roles());
    let rps = &cs[0];
    assert_eq!(
        rps.legend,
        ["users=4", "users=16", "users=64", "users=64 (predicted)"]
    );
    let m = &rps.mermaid;
    assert!(m.starts_with("```mermaid\nxychart-beta\n"), "{m}");
    assert!(m.ends_with("```\n"));
    let lines: Vec<&str> = m
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[3].trim(),
        "line \"users=64 (predicted)\" [380.00, 760.00, 1140.00, 1520.00]"
    );
    assert!(
        m.contains("x-axis \"replicas\" [\"1\", \"2\", \"3\", \"4\"]"),
        "{m}"
    );
    // The SVG legend in the same order.
    let names: Vec<String> = elements(&rps.svg)
        .into_iter()
        .skip_while(|e| e.get("class") != Some("legend"))
        .filter(|e| e.name == "text")
        .map(|e| e.text)
        .collect();
    assert_eq!(names, rps.legend);
}

/// Renders each chart to PNG with ImageMagick when it is installed: a
/// PNG as big as the SVG says, with more than one colour in it.
#[test]
fn svg_converts_to_png_with_imagemagick() {
    let convert = std::path::Path::new("/usr/bin/convert");
    if !convert.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ImageMagick is not installed (apt-get install imagemagick)"
        );
        println!("skipped: ImageMagick's /usr/bin/convert is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut svgs: Vec<(String, String)> = charts(&analysis(), &axes(), &roles())
        .into_iter()
        .map(|c| (c.id, c.svg))
        .collect();
    svgs.push((
        "escaped".into(),
        svg_line_chart(
            "RPS <&>",
            "x & y",
            "y",
            &[("a <&> b".into(), vec![(1.0, 1.0), (2.0, 3.0)])],
        ),
    ));
    svgs.push(("no-data".into(), svg_line_chart("t", "x", "y", &[])));
    for (id, svg) in svgs {
        let (src, png) = (
            dir.path().join(format!("{id}.svg")),
            dir.path().join(format!("{id}.png")),
        );
        std::fs::write(&src, &svg).unwrap();
        let o = std::process::Command::new(convert)
            .arg(&src)
            .arg(&png)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{id}: not a PNG");
        let o = std::process::Command::new(convert)
            .arg(&png)
            .args(["-format", "%w %h %k", "info:"])
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&o.stdout).to_string();
        let v: Vec<u64> = info
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let root = &elements(&svg)[0];
        assert_eq!(
            (v[0] as f64, v[1] as f64),
            (root.num("width"), root.num("height")),
            "{id}"
        );
        assert!(v[2] > 1, "{id}: one colour only");
    }
}
