//! One `TreeEnsembleClassifier` node, checked and flattened for evaluation.
//!
//! The ONNX-ML attributes describe nodes by `(tree id, node id)` pairs in parallel arrays.
//! They are laid out again here, each tree in one contiguous run, depth first, so that a
//! branch's two children sit in adjacent slots, a step down the tree is one comparison and one
//! add, and the first child's subtree follows its parent in memory.
//! Every reference is checked while laying out: a child that does not exist, a node reached
//! twice (a cycle or a shared subtree), a class id out of range and arrays of mismatched
//! lengths are refused, so evaluation itself cannot fail or loop.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::attrs::Attrs;
use tract_onnx::pb;

/// `Forest::leaf_of` of a branch.
pub(super) const BRANCH: u32 = u32::MAX;

/// A comparison of a branch node, `x MODE threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

impl Mode {
    /// `Some(None)` for a leaf, `None` for a name ONNX-ML does not define.
    fn parse(name: &str) -> Option<Option<Mode>> {
        Some(Some(match name {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => return Some(None),
            _ => return None,
        }))
    }

    /// Whether `x MODE t` holds (false for a NaN on either side, except NEQ, as in IEEE).
    #[inline]
    pub(super) fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
        }
    }
}

/// What turns the summed leaf weights into the output scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Post {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

/// A laid-out node. A branch goes to slot `child` when `x[feature] <= threshold` holds and to
/// `child + 1` otherwise (the canonical form, valid for rows without NaN when
/// [`Forest::fast`]). A leaf tests feature 0 against +inf and names itself as `child`, so a row
/// without NaN that reached it stays there: several rows can walk a tree in lockstep without a
/// test for the end of each one's path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub feature: u32,
    pub threshold: f32,
    pub child: u32,
}

/// A branch's test as the file states it, for rows with missing values and for models whose
/// tests have no canonical form (EQ, NEQ, thresholds at -inf or NaN).
#[derive(Clone, Copy, Debug)]
pub(super) struct Test {
    pub mode: Mode,
    pub threshold: f32,
    /// The true branch is slot `child` (else `child + 1`).
    pub true_first: bool,
    /// A NaN feature takes the true branch (`nodes_missing_value_tracks_true`).
    pub nan_true: bool,
}

/// A classifier's trees, flattened.
#[derive(Debug)]
pub(super) struct Forest {
    pub slots: Vec<Slot>,
    /// Parallel to `slots`; meaningful for branches only.
    pub tests: Vec<Test>,
    /// Parallel to `slots`: a leaf's index, or `BRANCH`.
    pub leaf_of: Vec<u32>,
    /// First slot of each tree, in the order the trees' ids first appear (onnxruntime's order
    /// of summation).
    pub roots: Vec<u32>,
    /// Every branch has a canonical `<=` form.
    pub fast: bool,
    /// Leaf `l`'s weights are `weight_*[leaf_start[l]..leaf_start[l + 1]]`, in file order.
    pub leaf_start: Vec<u32>,
    pub weight_class: Vec<u32>,
    pub weight_value: Vec<f32>,
    /// Every leaf lists one weight per class, classes in order.
    pub dense: bool,
    /// Leaf `l` gives class 1 a weight (onnxruntime's two-class rules depend on it).
    pub leaf_second: Vec<bool>,
    pub classes: usize,
    /// One more than the largest feature index a branch reads.
    pub features: usize,
    pub post: Post,
    pub base: Vec<f32>,
    /// Two classes, and the weights name only one of them.
    pub binary_case: bool,
    pub all_positive: bool,
}

/// The node and class arrays, lengths checked.
struct Raw<'a> {
    tree: &'a [i64],
    id: &'a [i64],
    feature: &'a [i64],
    value: Vec<f32>,
    mode: Vec<Option<Mode>>,
    yes: &'a [i64],
    no: &'a [i64],
    nan_true: &'a [i64],
    class_tree: &'a [i64],
    class_node: &'a [i64],
    class_id: &'a [i64],
    class_weight: Vec<f32>,
}

fn read_raw<'a>(a: &Attrs<'a>) -> Result<Raw<'a>, String> {
    let mode = a
        .strings("nodes_modes")
        .iter()
        .map(|m| Mode::parse(m).ok_or_else(|| format!("unknown node mode {m:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let raw = Raw {
        tree: a.ints("nodes_treeids"),
        id: a.ints("nodes_nodeids"),
        feature: a.ints("nodes_featureids"),
        value: a.floats("nodes_values")?,
        mode,
        yes: a.ints("nodes_truenodeids"),
        no: a.ints("nodes_falsenodeids"),
        nan_true: a.ints("nodes_missing_value_tracks_true"),
        class_tree: a.ints("class_treeids"),
        class_node: a.ints("class_nodeids"),
        class_id: a.ints("class_ids"),
        class_weight: a.floats("class_weights")?,
    };
    let n = raw.tree.len();
    let node_lengths = [
        ("nodes_nodeids", raw.id.len()),
        ("nodes_featureids", raw.feature.len()),
        ("nodes_values", raw.value.len()),
        ("nodes_modes", raw.mode.len()),
        ("nodes_truenodeids", raw.yes.len()),
        ("nodes_falsenodeids", raw.no.len()),
    ];
    if n == 0 {
        return Err("the tree ensemble has no nodes".into());
    }
    if let Some((name, len)) = node_lengths.iter().find(|(_, len)| *len != n) {
        return Err(format!("{name} has {len} entries, nodes_treeids {n}"));
    }
    if !raw.nan_true.is_empty() && raw.nan_true.len() != n {
        let len = raw.nan_true.len();
        return Err(format!(
            "nodes_missing_value_tracks_true has {len} entries, nodes_treeids {n}"
        ));
    }
    let m = raw.class_id.len();
    let class_lengths = [
        ("class_treeids", raw.class_tree.len()),
        ("class_nodeids", raw.class_node.len()),
        ("class_weights", raw.class_weight.len()),
    ];
    if let Some((name, len)) = class_lengths.iter().find(|(_, len)| *len != m) {
        return Err(format!("{name} has {len} entries, class_ids {m}"));
    }
    Ok(raw)
}

/// `(tree id, node id)` to the node's index in the attribute arrays.
type Index = HashMap<(i64, i64), usize>;

/// The node index, and each tree's first-listed node (its root).
fn index(raw: &Raw) -> Result<(Index, Vec<usize>), String> {
    let mut at = HashMap::with_capacity(raw.tree.len());
    let mut first: HashMap<i64, usize> = HashMap::new();
    let mut roots = Vec::new();
    for (i, (&t, &id)) in raw.tree.iter().zip(raw.id).enumerate() {
        if at.insert((t, id), i).is_some() {
            return Err(format!("node {id} of tree {t} is listed twice"));
        }
        first.entry(t).or_insert_with(|| {
            roots.push(i);
            i
        });
    }
    Ok((at, roots))
}

/// The canonical `<=` threshold of a test and whether its true branch comes first, or `None`
/// where `x <= t'` cannot express it for every non-NaN x.
fn canonical(mode: Mode, t: f32) -> Option<(f32, bool)> {
    match mode {
        Mode::Leq => Some((t, true)),
        // x < t is x <= the next float below t; there is none below -inf.
        Mode::Lt if t > f32::NEG_INFINITY => Some((t.next_down(), true)),
        Mode::Gt if !t.is_nan() => Some((t, false)),
        Mode::Gte if t > f32::NEG_INFINITY => Some((t.next_down(), false)),
        _ => None,
    }
}

/// Slots, tests and roots of the laid-out trees, and for each leaf the node it came from.
struct Layout {
    slots: Vec<Slot>,
    tests: Vec<Test>,
    leaf_of: Vec<u32>,
    roots: Vec<u32>,
    leaf_nodes: Vec<usize>,
    fast: bool,
    features: usize,
}

const PLACEHOLDER: Slot = Slot {
    feature: 0,
    threshold: 0.0,
    child: 0,
};
const NO_TEST: Test = Test {
    mode: Mode::Leq,
    threshold: 0.0,
    true_first: true,
    nan_true: false,
};

fn layout(raw: &Raw, at: &Index, roots: &[usize]) -> Result<Layout, String> {
    let n = raw.tree.len();
    let mut seen = vec![false; n];
    let mut out = Layout {
        slots: Vec::with_capacity(n),
        tests: Vec::with_capacity(n),
        leaf_of: Vec::with_capacity(n),
        roots: Vec::with_capacity(roots.len()),
        leaf_nodes: Vec::new(),
        fast: true,
        features: 0,
    };
    for &root in roots {
        seen[root] = true;
        lay_tree(raw, at, root, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// Lays out the tree under `root` (already marked seen) after the slots so far.
fn lay_tree(
    raw: &Raw,
    at: &Index,
    root: usize,
    seen: &mut [bool],
    out: &mut Layout,
) -> Result<(), String> {
    let slot_id = |s: usize| u32::try_from(s).map_err(|_| "too many nodes".to_string());
    out.roots.push(slot_id(out.slots.len())?);
    // Pending (node index, its slot), the first child on top.
    let mut stack = vec![(root, out.slots.len())];
    out.slots.push(PLACEHOLDER);
    out.tests.push(NO_TEST);
    out.leaf_of.push(BRANCH);
    while let Some((node, slot)) = stack.pop() {
        let Some(mode) = raw.mode[node] else {
            out.slots[slot] = Slot {
                feature: 0,
                threshold: f32::INFINITY,
                child: slot_id(slot)?,
            };
            out.leaf_of[slot] = slot_id(out.leaf_nodes.len())?;
            out.leaf_nodes.push(node);
            continue;
        };
        let (tree, id) = (raw.tree[node], raw.id[node]);
        let child = |target: i64, which: &str| {
            at.get(&(tree, target)).copied().ok_or_else(|| {
                format!("node {id} of tree {tree} has {which} node {target}, which does not exist")
            })
        };
        let (yes, no) = (child(raw.yes[node], "true")?, child(raw.no[node], "false")?);
        for c in [yes, no] {
            if std::mem::replace(&mut seen[c], true) {
                return Err(format!(
                    "node {} of tree {tree} is reached twice (a cycle or a shared subtree)",
                    raw.id[c]
                ));
            }
        }
        let feature = u32::try_from(raw.feature[node])
            .ok()
            .filter(|&f| f != u32::MAX)
            .ok_or_else(|| {
                format!(
                    "node {id} of tree {tree} reads feature {}",
                    raw.feature[node]
                )
            })?;
        out.features = out.features.max(feature as usize + 1);
        let t = raw.value[node];
        let (threshold, true_first) = canonical(mode, t).unwrap_or((t, true));
        out.fast &= canonical(mode, t).is_some();
        let first = out.slots.len();
        let (a, b) = if true_first { (yes, no) } else { (no, yes) };
        stack.extend([(b, first + 1), (a, first)]);
        out.slots.extend([PLACEHOLDER, PLACEHOLDER]);
        out.tests.extend([NO_TEST, NO_TEST]);
        out.leaf_of.extend([BRANCH, BRANCH]);
        out.slots[slot] = Slot {
            feature,
            threshold,
            child: slot_id(first)?,
        };
        out.tests[slot] = Test {
            mode,
            threshold: t,
            true_first,
            nan_true: raw.nan_true.get(node).is_some_and(|&v| v == 1),
        };
    }
    Ok(())
}

/// Leaf weights grouped by leaf, in file order within each leaf. Weights on branches or on
/// nodes no tree reaches are ignored, as onnxruntime ignores them.
struct Weights {
    start: Vec<u32>,
    class: Vec<u32>,
    value: Vec<f32>,
}

fn weights(raw: &Raw, at: &Index, leaf_nodes: &[usize], classes: usize) -> Result<Weights, String> {
    let mut leaf_of = vec![u32::MAX; raw.tree.len()];
    for (l, &node) in leaf_nodes.iter().enumerate() {
        leaf_of[node] = l as u32;
    }
    let mut owner = Vec::with_capacity(raw.class_id.len());
    let mut count = vec![0u32; leaf_nodes.len() + 1];
    for i in 0..raw.class_id.len() {
        let (tree, node, class) = (raw.class_tree[i], raw.class_node[i], raw.class_id[i]);
        let &idx = at.get(&(tree, node)).ok_or_else(|| {
            format!("a class weight names node {node} of tree {tree}, which does not exist")
        })?;
        if usize::try_from(class).map_or(true, |c| c >= classes) {
            return Err(format!(
                "a class weight of node {node} of tree {tree} is for class {class}; the model has {classes} classes"
            ));
        }
        let leaf = leaf_of[idx];
        owner.push(leaf);
        if leaf != u32::MAX {
            count[leaf as usize + 1] += 1;
        }
    }
    for l in 1..count.len() {
        count[l] += count[l - 1];
    }
    let total = count[leaf_nodes.len()] as usize;
    let (mut class, mut value) = (vec![0u32; total], vec![0f32; total]);
    let mut fill = count.clone();
    for (i, &leaf) in owner.iter().enumerate().filter(|(_, l)| **l != u32::MAX) {
        let k = fill[leaf as usize] as usize;
        fill[leaf as usize] += 1;
        class[k] = raw.class_id[i] as u32;
        value[k] = raw.class_weight[i];
    }
    Ok(Weights {
        start: count,
        class,
        value,
    })
}

/// The class count: as many as the node's class labels.
fn class_count(a: &Attrs) -> Result<usize, String> {
    let strings = a.strings("classlabels_strings").len();
    let ints = a.ints("classlabels_int64s").len();
    let classes = if strings > 0 { strings } else { ints };
    if classes < 2 {
        return Err(format!(
            "the classifier has {classes} class labels; at least 2 are needed"
        ));
    }
    Ok(classes)
}

fn post_transform(a: &Attrs) -> Result<Post, String> {
    match a.string("post_transform", "NONE").as_str() {
        "NONE" => Ok(Post::None),
        "SOFTMAX" => Ok(Post::Softmax),
        "LOGISTIC" => Ok(Post::Logistic),
        "SOFTMAX_ZERO" => Ok(Post::SoftmaxZero),
        "PROBIT" => Ok(Post::Probit),
        other => Err(format!("unknown post_transform {other:?}")),
    }
}

impl Forest {
    /// Reads and checks a `TreeEnsembleClassifier` node.
    pub(super) fn from_node(node: &pb::NodeProto) -> Result<Forest, String> {
        let a = Attrs::of(node);
        let classes = class_count(&a)?;
        let post = post_transform(&a)?;
        let base = a.floats("base_values")?;
        let raw = read_raw(&a)?;
        let (at, roots) = index(&raw)?;
        let lay = layout(&raw, &at, &roots)?;
        let w = weights(&raw, &at, &lay.leaf_nodes, classes)?;
        let ids: std::collections::BTreeSet<i64> = raw.class_id.iter().copied().collect();
        let forest = Forest {
            dense: w
                .start
                .windows(2)
                .all(|s| (s[1] - s[0]) as usize == classes)
                && w.class
                    .chunks(classes)
                    .all(|c| c.iter().enumerate().all(|(i, &k)| k as usize == i)),
            leaf_second: w
                .start
                .windows(2)
                .map(|s| w.class[s[0] as usize..s[1] as usize].contains(&1))
                .collect(),
            slots: lay.slots,
            tests: lay.tests,
            leaf_of: lay.leaf_of,
            roots: lay.roots,
            fast: lay.fast,
            leaf_start: w.start,
            weight_class: w.class,
            weight_value: w.value,
            classes,
            features: lay.features,
            post,
            base,
            binary_case: classes == 2 && ids.len() == 1,
            all_positive: raw
                .class_weight
                .iter()
                .all(|v| v.partial_cmp(&0.0) != Some(Ordering::Less)),
        };
        forest.check_two_class_rules()?;
        Ok(forest)
    }

    /// Refuses the base-value and transform combinations for which onnxruntime's output is
    /// not defined, so that every model accepted has a reference to agree with.
    fn check_two_class_rules(&self) -> Result<(), String> {
        let (c, b) = (self.classes, self.base.len());
        if c > 2 && b != 0 && b != c {
            return Err(format!("base_values has {b} entries for {c} classes"));
        }
        if c == 2 && b > 2 {
            return Err(format!("base_values has {b} entries for 2 classes"));
        }
        if c == 2 && b == 1 && !self.binary_case {
            return Err("a two-class model with weights for both classes and one base value has no defined second probability".into());
        }
        if c == 2 && b != 2 && self.post == Post::Probit {
            return Err(
                "a two-class model with a PROBIT transform has no defined second probability"
                    .into(),
            );
        }
        Ok(())
    }
}
