//! The Levenshtein distance, for "did you mean …" messages: the nearest manifest field to an
//! unknown key, a runtimeClassName that nearly names Contrast's.

/// The number of single-character insertions, deletions and substitutions that turn `a` into
/// `b`, counted over characters. Costs `a.len() × b.len()` steps: bound the inputs first.
#[must_use]
pub fn levenshtein(a: &str, b: &str) -> usize {
    of_chars(
        &a.chars().collect::<Vec<_>>(),
        &b.chars().collect::<Vec<_>>(),
    )
}

/// [`levenshtein`] over characters already split (and case-folded) by the caller.
pub(crate) fn of_chars(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(first) = current.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous
                .get(j)
                .map_or(usize::MAX, |d| d + usize::from(ca != cb));
            let delete = previous.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insert = current.get(j).map_or(usize::MAX, |d| d + 1);
            if let Some(slot) = current.get_mut(j + 1) {
                *slot = substitute.min(delete).min(insert);
            }
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(a.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        let d = levenshtein;
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("Polices", "Policies"), 1);
        assert_eq!(d("Platfrom", "Platform"), 2);
        assert_eq!(d("kitten", "sitting"), 3);
    }
}
