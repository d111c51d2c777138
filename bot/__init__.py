"""newsbot's answering side: `answering` (question in, grounded answer out), and its front ends,
`cli` (terminal) and `telegram`. `settings` holds what they share. Imports go one way: front ends
use `answering`, `answering` uses `index`, and nothing here is imported by `index`."""
