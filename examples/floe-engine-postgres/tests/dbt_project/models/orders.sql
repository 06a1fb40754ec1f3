select * from (values (1, 'alice', 30.00), (2, 'bob', 12.50), (3, 'alice', 7.25)) as t(id, customer, amount)
