//! Short texts for events and conditions: name lists and length limits.

/// `a, b, c and N more`: the first `shown` names, then how many were left out.
pub fn name_list(names: &[String], shown: usize) -> String {
    let mut text = names
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        text.push_str(&format!(" and {} more", names.len() - shown));
    }
    text
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_what_they_leave_out() {
        let names: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
        assert_eq!(name_list(&names, 5), "p0, p1, p2, p3, p4 and 2 more");
        assert_eq!(name_list(&names[..2], 5), "p0, p1");
        assert_eq!(name_list(&[], 5), "");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(truncate("ééé".to_owned(), 3), "é");
        assert_eq!(truncate("abc".to_owned(), 10), "abc");
    }
}
