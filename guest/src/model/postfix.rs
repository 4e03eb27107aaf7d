//! Generated-column expressions as a postfix list of nodes, the shape they take in WIT (whose
//! types cannot be recursive), and back. Malformed lists are `invalid-input`, never a panic:
//! they come straight from callers of the component.

use super::schema::Expr;
use crate::error::{Error, Result};

/// One node of an expression in postfix order: operands come before their operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprNode {
    /// Push a column's value.
    Column(String),
    /// Push an integer literal.
    Integer(i64),
    /// Pop one operand; push its length in bytes.
    ByteLength,
    /// Pop this many operands; push their sum.
    Sum(u32),
    /// Pop this many operands; push the first that is not NULL.
    Coalesce(u32),
}

impl Expr {
    /// Build an expression from postfix nodes. Fails with `invalid-input` when an operator
    /// lacks operands, takes none, or the list does not reduce to exactly one expression.
    pub fn from_postfix(nodes: &[ExprNode]) -> Result<Expr> {
        let mut stack: Vec<Expr> = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let expr = match node {
                ExprNode::Column(c) => Expr::Column(c.clone()),
                ExprNode::Integer(n) => Expr::Integer(*n),
                ExprNode::ByteLength => {
                    Expr::ByteLength(Box::new(pop(&mut stack, 1, i)?.remove(0)))
                }
                ExprNode::Sum(n) => Expr::Sum(pop(&mut stack, *n, i)?),
                ExprNode::Coalesce(n) => Expr::Coalesce(pop(&mut stack, *n, i)?),
            };
            stack.push(expr);
        }
        match (stack.pop(), stack.is_empty()) {
            (Some(expr), true) => Ok(expr),
            (None, _) => Err(Error::invalid_input("empty generated-column expression")),
            (Some(_), false) => Err(Error::invalid_input(format!(
                "generated-column expression leaves {} operands instead of one",
                stack.len() + 1
            ))),
        }
    }

    /// The expression as postfix nodes (the inverse of [`Expr::from_postfix`]).
    pub fn to_postfix(&self) -> Vec<ExprNode> {
        let mut out = Vec::new();
        self.push_postfix(&mut out);
        out
    }

    fn push_postfix(&self, out: &mut Vec<ExprNode>) {
        match self {
            Expr::Column(c) => out.push(ExprNode::Column(c.clone())),
            Expr::Integer(n) => out.push(ExprNode::Integer(*n)),
            Expr::ByteLength(e) => {
                e.push_postfix(out);
                out.push(ExprNode::ByteLength);
            }
            Expr::Sum(es) | Expr::Coalesce(es) => {
                es.iter().for_each(|e| e.push_postfix(out));
                let n = u32::try_from(es.len()).unwrap_or(u32::MAX);
                out.push(match self {
                    Expr::Sum(_) => ExprNode::Sum(n),
                    _ => ExprNode::Coalesce(n),
                });
            }
        }
    }
}

/// Pop the last `n` operands (in their original order) for the operator at `at`.
fn pop(stack: &mut Vec<Expr>, n: u32, at: usize) -> Result<Vec<Expr>> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n == 0 {
        return Err(Error::invalid_input(format!(
            "generated-column expression: operator at {at} takes no operands"
        )));
    }
    if n > stack.len() {
        return Err(Error::invalid_input(format!(
            "generated-column expression: operator at {at} needs {n} operands, has {}",
            stack.len()
        )));
    }
    Ok(stack.split_off(stack.len() - n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn round_trips_the_resource_tags_size() {
        let size = Expr::Sum(vec![
            Expr::byte_length_or_zero("name"),
            Expr::byte_length_or_zero("labels"),
            Expr::Integer(3),
        ]);
        let nodes = size.to_postfix();
        assert_eq!(nodes[0], ExprNode::Column("name".into()));
        assert_eq!(nodes.last(), Some(&ExprNode::Sum(3)));
        assert_eq!(Expr::from_postfix(&nodes).unwrap(), size);
    }

    #[test]
    fn malformed_postfix_is_invalid_input() {
        let bad: [&[ExprNode]; 5] = [
            &[],
            &[ExprNode::ByteLength],
            &[ExprNode::Integer(1), ExprNode::Sum(2)],
            &[ExprNode::Integer(1), ExprNode::Integer(2)],
            &[ExprNode::Integer(1), ExprNode::Coalesce(0)],
        ];
        for nodes in bad {
            let err = Expr::from_postfix(nodes).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{nodes:?}");
        }
        let huge = [ExprNode::Integer(1), ExprNode::Sum(u32::MAX)];
        assert!(Expr::from_postfix(&huge).is_err());
    }
}
