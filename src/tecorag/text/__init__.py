"""Text understanding shared by the retrieval and generation stages: jieba words and IDF (`words`), a passage's
structure (`passage`), and what a question asks (`question`). Neither stage imports the other."""
