//! Where in a document a schema sits: the location messages name.

/// Where in a document a schema sits, for messages: the nearest `$ref`
/// followed (or the schema a check began with), then the keywords walked
/// since. A chain on the stack, rendered only when a message needs it.
pub(super) struct SchemaAt<'a> {
    pub(super) parent: Option<&'a SchemaAt<'a>>,
    pub(super) step: Step<'a>,
}

/// One step of a [`SchemaAt`].
pub(super) enum Step<'a> {
    /// The schema the check began with.
    Start,
    /// A `$ref` followed: where the schema lives from here on.
    Ref(&'a str),
    /// A keyword, or a keyword and a name (`properties/<name>`).
    Key(&'static str, Option<&'a str>),
    /// A keyword and an index (`allOf/<i>`, `oneOf/<i>`).
    Index(&'static str, usize),
}

impl<'a> SchemaAt<'a> {
    /// `self` extended by one step.
    pub(super) fn then(&'a self, step: Step<'a>) -> SchemaAt<'a> {
        SchemaAt {
            parent: Some(self),
            step,
        }
    }
}

impl std::fmt::Display for SchemaAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.step, self.parent) {
            (Step::Start, _) => return f.write_str("the checked schema"),
            (Step::Ref(r), _) => return f.write_str(r),
            (_, Some(parent)) => write!(f, "{parent}")?,
            (_, None) => {}
        }
        match &self.step {
            Step::Key(k, Some(name)) => write!(f, "/{k}/{name}"),
            Step::Key(k, None) => write!(f, "/{k}"),
            Step::Index(k, i) => write!(f, "/{k}/{i}"),
            Step::Start | Step::Ref(_) => Ok(()),
        }
    }
}
