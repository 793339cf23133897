//! placeholder: the helper writing the solver core replaces this.
