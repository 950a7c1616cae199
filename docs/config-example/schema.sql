-- The worked example of docs/config.md: a small recipe site. walcache never runs this file;
-- you do (psql -f schema.sql), as you would create your own schema.
create table chefs (
  id bigint generated always as identity primary key,
  slug text not null unique,
  name text not null,
  joined_at timestamptz not null default now()
);
create table recipes (
  id bigint generated always as identity primary key,
  chef_id bigint not null references chefs (id),
  title text not null,
  servings int not null,
  price numeric(8, 2) not null,
  listed boolean not null default true,
  created_at timestamptz not null default now()
);
create table ingredients (
  id bigint generated always as identity primary key,
  name text not null unique
);
create table recipe_ingredients (
  recipe_id bigint not null references recipes (id) on delete cascade,
  ingredient_id bigint not null references ingredients (id),
  primary key (recipe_id, ingredient_id)
);
create table reviews (
  id bigint generated always as identity primary key,
  recipe_id bigint not null references recipes (id) on delete cascade,
  stars int not null check (stars between 1 and 5),
  remark text,
  created_at timestamptz not null default now()
);

-- walcache reads the old value of these columns from the WAL on UPDATE and DELETE (a chef
-- renamed, a review moved to another recipe): only REPLICA IDENTITY FULL puts them there.
-- The CDC names this statement for each table that needs it, and refuses to start without.
alter table chefs replica identity full;
alter table recipes replica identity full;
alter table reviews replica identity full;
