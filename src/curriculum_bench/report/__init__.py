"""Tables, figures, claims and the index, from finished runs only."""

# Above every table, the claims and the index of a config with `fabricated_data: true`.
FABRICATED_WARNING = (
    "**FABRICATED DATA: these numbers come from raw files fabricated for the paper smoke "
    "run (curriculum_bench.smoke); they test that the code paths run and mean nothing.**"
)
