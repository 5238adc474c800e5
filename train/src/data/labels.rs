//! A labels CSV beside an image folder: a `file` column naming each image and any number of
//! categorical columns (the parts drawn in each face, say). Every image needs exactly one row,
//! and every row one image, so a typo in either cannot silently mislabel the data.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gan_contract::AttributeInfo;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The column that names the image of a row.
pub const FILE_COLUMN: &str = "file";
/// More classes than this in one column is a numeric or free-text column, not a category.
pub const MAX_CLASSES: usize = 1000;

/// One categorical column: its name and its classes, sorted (a class's index is its position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub classes: Vec<String>,
}

/// The class of every attribute for every image of a folder, in the folder's (sorted) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub attributes: Vec<Attribute>,
    /// `images × attributes` class indices, row-major.
    values: Vec<u32>,
}

impl Labels {
    /// Reads `csv` for the images `files` (in that order). With `known`, the columns and classes
    /// must be among those (held-out labels read against the training ones, so the indices
    /// agree); without, they are taken from the file.
    pub fn read(csv_path: &Path, files: &[PathBuf], known: Option<&[Attribute]>) -> Result<Self> {
        let err = |message: String| TrainError::data(csv_path, message);
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(csv_path)
            .map_err(|e| err(csv_problem(&e)))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| err(csv_problem(&e)))?
            .iter()
            .map(str::to_string)
            .collect();
        let file_col = header
            .iter()
            .position(|h| h == FILE_COLUMN)
            .ok_or_else(|| err(format!("line 1: no `{FILE_COLUMN}` column in {header:?}")))?;
        let columns: Vec<(usize, String)> = header
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != file_col)
            .map(|(i, h)| (i, h.clone()))
            .collect();
        if columns.is_empty() {
            return Err(err(format!(
                "line 1: no label columns beside `{FILE_COLUMN}`"
            )));
        }
        let mut seen = BTreeSet::new();
        for (_, name) in &columns {
            if name.is_empty() || !seen.insert(name.as_str()) {
                return Err(err(format!(
                    "line 1: column name {name:?} is empty or repeated"
                )));
            }
        }
        let by_name: HashMap<&str, usize> = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((f.file_name()?.to_str()?, i)))
            .collect();
        let folder = files
            .first()
            .and_then(|f| f.parent())
            .map_or_else(|| Path::new(".").display(), Path::display);
        // Per image: its line and its raw cells.
        let mut rows: Vec<Option<(u64, Vec<String>)>> = vec![None; files.len()];
        for record in reader.records() {
            let record = record.map_err(|e| err(csv_problem(&e)))?;
            let line = record.position().map_or(0, |p| p.line());
            let file = &record[file_col];
            let Some(&image) = by_name.get(file) else {
                return Err(err(format!(
                    "line {line}: {file:?} is not an image in {folder}"
                )));
            };
            if let Some((first, _)) = &rows[image] {
                return Err(err(format!(
                    "line {line}: {file:?} already has a row (line {first})"
                )));
            }
            let cells: Vec<String> = columns
                .iter()
                .map(|(i, _)| record[*i].to_string())
                .collect();
            if let Some(k) = cells.iter().position(String::is_empty) {
                return Err(err(format!(
                    "line {line}: empty value in column `{}`",
                    columns[k].1
                )));
            }
            rows[image] = Some((line, cells));
        }
        if let Some(i) = rows.iter().position(Option::is_none) {
            let missing = rows.iter().filter(|r| r.is_none()).count();
            return Err(err(format!(
                "no row for {} ({missing} of the folder's {} images have none)",
                files[i].display(),
                files.len()
            )));
        }
        let rows: Vec<(u64, Vec<String>)> = rows.into_iter().flatten().collect();
        let attributes = match known {
            Some(known) => columns
                .iter()
                .map(|(_, name)| {
                    known.iter().find(|a| &a.name == name).cloned().ok_or_else(|| {
                        err(format!(
                            "line 1: column `{name}` is not one of the known attributes {:?}",
                            known.iter().map(|a| &a.name).collect::<Vec<_>>()
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            None => columns
                .iter()
                .enumerate()
                .map(|(k, (_, name))| {
                    let classes: BTreeSet<&str> = rows.iter().map(|(_, c)| c[k].as_str()).collect();
                    match classes.len() {
                        1 => Err(err(format!(
                            "column `{name}` has one class ({:?}) in all {} rows: nothing to tell apart",
                            classes.first().expect("one"),
                            rows.len()
                        ))),
                        n if n > MAX_CLASSES => Err(err(format!(
                            "column `{name}` has {n} classes, more than {MAX_CLASSES}: not a category"
                        ))),
                        _ => Ok(Attribute {
                            name: name.clone(),
                            classes: classes.into_iter().map(str::to_string).collect(),
                        }),
                    }
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let index: Vec<HashMap<&str, u32>> = attributes
            .iter()
            .map(|a| {
                a.classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i as u32))
                    .collect()
            })
            .collect();
        let mut values = Vec::with_capacity(rows.len() * attributes.len());
        for (line, cells) in &rows {
            for ((cell, index), attribute) in cells.iter().zip(&index).zip(&attributes) {
                let class = index.get(cell.as_str()).ok_or_else(|| {
                    err(format!(
                        "line {line}: class {cell:?} of column `{}` is not among its known classes",
                        attribute.name
                    ))
                })?;
                values.push(*class);
            }
        }
        Ok(Self { attributes, values })
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.attributes.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every image's classes, `images × attributes`, row-major.
    pub fn values(&self) -> &[u32] {
        &self.values
    }

    /// Each attribute with its classes' shares of these images.
    pub fn frequencies(&self) -> Vec<AttributeInfo> {
        let a = self.attributes.len();
        self.attributes
            .iter()
            .enumerate()
            .map(|(k, attribute)| {
                let mut counts = vec![0usize; attribute.classes.len()];
                for row in self.values.chunks_exact(a) {
                    counts[row[k] as usize] += 1;
                }
                AttributeInfo::from_counts(&attribute.name, attribute.classes.clone(), &counts)
            })
            .collect()
    }

    /// Each image's weight when rare classes are drawn more often: over its columns, the
    /// largest `(classes in the column × the class's share)^(−power)`, and at least 1. A class
    /// at its column's even share weighs 1, so 45 evenly drawn hair styles are not "rare", while
    /// a 2 % pair of glasses beside 90 % without is.
    pub fn rarity_weights(&self, power: f64) -> Vec<f64> {
        let shares: Vec<Vec<f64>> = self
            .frequencies()
            .into_iter()
            .map(|a| a.frequencies)
            .collect();
        self.values
            .chunks_exact(self.attributes.len())
            .map(|row| {
                row.iter()
                    .zip(&shares)
                    .map(|(&c, s)| (s.len() as f64 * s[c as usize]).powf(-power))
                    .fold(1.0, f64::max)
            })
            .collect()
    }

    pub(crate) fn truncate(&mut self, n: usize) {
        self.values.truncate(n * self.attributes.len());
    }
}

/// A csv error as "line N: what", the way the other messages read.
fn csv_problem(e: &csv::Error) -> String {
    match e.position() {
        Some(p) => format!("line {}: {e}", p.line()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(|n| Path::new("/data").join(n)).collect()
    }

    fn read(text: &str, names: &[&str]) -> Result<Labels> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, text).unwrap();
        Labels::read(&path, &files(names), None)
    }

    fn problem(text: &str, names: &[&str]) -> String {
        let e = read(text, names).unwrap_err().to_string();
        assert!(e.contains("labels.csv"), "{e}");
        e
    }

    #[test]
    fn reads_rows_in_folder_order_with_sorted_classes() {
        let labels = read(
            "file,hair,glasses\nb.png,short,none\na.png,long,round\nc.png,long,none\n",
            &["a.png", "b.png", "c.png"],
        )
        .unwrap();
        assert_eq!(labels.attributes[0].classes, ["long", "short"]);
        assert_eq!(labels.attributes[1].classes, ["none", "round"]);
        assert_eq!(labels.values(), [0, 1, 1, 0, 0, 0]);
        assert_eq!(labels.len(), 3);
        let shares = labels.frequencies();
        assert_eq!(shares[0].frequencies, [2.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(shares[1].name, "glasses");
    }

    #[test]
    fn rare_classes_weigh_more_and_even_ones_weigh_one() {
        // glasses: none on 3 of 4 faces (2 × 3/4 = 1.5 → weight 1), round on 1 (2 × 1/4 → 2);
        // hair: two classes at their even share (weight 1 at any power).
        let labels = read(
            "file,hair,glasses\na.png,long,none\nb.png,short,none\nc.png,long,round\nd.png,short,none\n",
            &["a.png", "b.png", "c.png", "d.png"],
        )
        .unwrap();
        assert_eq!(labels.rarity_weights(1.0), [1.0, 1.0, 2.0, 1.0]);
        assert_eq!(labels.rarity_weights(0.5), [1.0, 1.0, 2f64.sqrt(), 1.0]);
        assert_eq!(labels.rarity_weights(0.0), [1.0; 4]);
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        let two = ["a.png", "b.png"];
        for (text, wanted) in [
            ("file,hair\na.png,x\nz.png,y\n", &["line 3", "z.png"][..]),
            ("file,hair\na.png,x\n", &["no row for /data/b.png"]),
            (
                "file,hair\na.png,x\nb.png,y\na.png,y\n",
                &["line 4", "line 2"],
            ),
            (
                "file,hair\na.png,x\nb.png,\n",
                &["line 3: empty value in column `hair`"],
            ),
            ("file,hair\na.png,x\nb.png,x\n", &["one class"]),
            ("name,hair\na.png,x\n", &["no `file` column"]),
            ("file\na.png\nb.png\n", &["no label columns"]),
            ("file,hair,hair\na.png,x,y\nb.png,y,x\n", &["repeated"]),
            ("file,hair\na.png,x,extra\nb.png,y\n", &["line 2"]),
        ] {
            let e = problem(text, &two);
            assert!(wanted.iter().all(|w| e.contains(w)), "{text:?}: {e}");
        }
        let many: String = (0..=MAX_CLASSES)
            .map(|i| format!("f{i}.png,c{i}\n"))
            .collect();
        let names: Vec<String> = (0..=MAX_CLASSES).map(|i| format!("f{i}.png")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let e = problem(&format!("file,id\n{many}"), &names);
        assert!(e.contains("more than 1000"), "{e}");
    }

    #[test]
    fn held_out_labels_take_the_training_classes() {
        let train = read("file,hair\na.png,long\nb.png,short\n", &["a.png", "b.png"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, "file,hair\nc.png,short\n").unwrap();
        let test = Labels::read(&path, &files(&["c.png"]), Some(&train.attributes)).unwrap();
        assert_eq!(test.attributes, train.attributes);
        assert_eq!(test.values(), [1]);
        std::fs::write(&path, "file,hair\nc.png,bald\n").unwrap();
        let e = Labels::read(&path, &files(&["c.png"]), Some(&train.attributes)).unwrap_err();
        assert!(e.to_string().contains("line 2: class \"bald\""), "{e}");
    }
}
