-- A few rows to try the worked example of docs/config.md with.
insert into chefs (slug, name, joined_at) values
  ('ada', 'Ada Ramsay', '2025-01-10 09:00:00+00'),
  ('bo', 'Bo Child', '2025-02-01 12:30:00+00');
insert into recipes (chef_id, title, servings, price, listed, created_at) values
  (1, 'Lemon risotto', 4, 12.50, true, '2025-03-01 18:00:00+00'),
  (1, 'Pea soup', 2, 3.20, true, '2025-03-05 12:00:00+00'),
  (2, 'Secret stew', 6, 20.00, false, '2025-03-07 19:00:00+00');
insert into ingredients (name) values ('rice'), ('lemon'), ('peas'), ('butter');
insert into recipe_ingredients (recipe_id, ingredient_id) values (1, 1), (1, 2), (1, 4), (2, 3), (2, 4);
insert into reviews (recipe_id, stars, remark, created_at) values
  (1, 5, 'Bright and creamy', '2025-03-02 20:00:00+00'),
  (1, 4, null, '2025-03-03 21:15:00+00');
