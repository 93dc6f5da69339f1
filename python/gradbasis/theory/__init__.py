"""The paper's assumptions, lemmas and theorems, each judged by one certificate."""
