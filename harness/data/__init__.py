"""Reading Aff-Wild2 (and the synthetic dataset laid out like it): layout, annotations, media, templates."""
