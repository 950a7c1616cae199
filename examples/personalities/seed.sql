-- Deterministic: 3000 personalities, the same on every run.
insert into personalities (name, archetype, traits, config, created_at, updated_at)
  select 'persona-' || i,
         (array['mentor', 'trickster', 'sage', 'explorer', 'caregiver', 'rebel'])[1 + i % 6],
         jsonb_build_object(
           'warmth', (i * 7) % 10, 'humor', (i * 3) % 10,
           'tags', jsonb_build_array('t' || (i % 4), 't' || (i % 9))),
         jsonb_build_object('model', (array['small', 'medium', 'large'])[1 + i % 3], 'temperature', ((i % 10) / 10.0)),
         timestamptz '2025-01-01' + (i || ' minutes')::interval,
         timestamptz '2025-01-01' + (i || ' minutes')::interval
  from generate_series(1, 3000) i;
