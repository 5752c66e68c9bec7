-- bench/scale_seed.sql — users :from to :to of bench/scale.sh, by SQL in one
-- statement (psql -v from=N -v to=M -f bench/scale_seed.sql).
--
-- Names and addresses that searches can tell apart, the same at every size:
-- 50 first names x 50 last names (a user's pair from two multiplicative
-- hashes of the id), 5 domains, the id in the address. So:
--   ?q=son      common: 7 of the 50 last names (Johnson, Wilson, Anderson,
--               Jackson, Thompson, Robinson, Nelson): ~14 % of users
--   ?q=quixote  rare: 10 users in all, at every size (ids 777, 1777, ...,
--               9777 are Quixotewrights)
--   ?q=a        one letter: most names have one
--   ?q=zq       two letters that no user has
INSERT INTO users (id, email, name, active)
SELECT g,
       lower(n.first) || '.' || lower(n.last) || g || '@' || n.domain,
       n.first || ' ' || n.last,
       g % 10 <> 0
FROM generate_series(:from::bigint, :to::bigint) AS g,
LATERAL (SELECT
  (ARRAY['James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth',
         'William', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Charles', 'Karen',
         'Christopher', 'Lisa', 'Daniel', 'Nancy', 'Matthew', 'Betty', 'Anthony', 'Sandra', 'Mark', 'Margaret',
         'Donald', 'Ashley', 'Steven', 'Kimberly', 'Paul', 'Emily', 'Andrew', 'Donna', 'Joshua', 'Michelle',
         'Kenneth', 'Carol', 'Kevin', 'Amanda', 'Brian', 'Dorothy', 'George', 'Melissa', 'Timothy', 'Deborah'])
    [1 + (g * 7919) % 50] AS first,
  CASE WHEN g <= 10000 AND g % 1000 = 777 THEN 'Quixotewright' ELSE
  (ARRAY['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
         'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
         'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
         'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores',
         'Green', 'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts'])
    [1 + (g * 104729) % 50] END AS last,
  (ARRAY['example.com', 'mail.test', 'corp.example', 'inbox.test', 'post.example'])[1 + g % 5] AS domain) AS n;

SELECT setval(pg_get_serial_sequence('users', 'id'), :to);
