"""The answerer: a question in, a grounded `Answer` out, with no front end in sight.

The steps, in the order `answer.Answerer` runs them: `followup` condenses a follow-up into a
standalone question, `question` parses what is asked (spaCy through `nlp`, periods through
`dates`), `retrieve` finds chunks (dense + BM25, fused), `rerank` scores passages with the
cross-encoder, `read` and `findings` pick the sentences and the answer phrase (`speakers` names
who speaks), `gate` and `policy` decide whether to answer or refuse, `grounding` checks every
quote against its file, and `wording` says it. `llm` and `support` are the optional LLM path;
`llamaindex` exposes the retriever and reranker to llama-index applications. `types` holds the
values that cross the boundary to the front ends.
"""
