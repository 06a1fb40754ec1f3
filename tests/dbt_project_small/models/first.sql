select 1 as id, 'a' as name
union all
select 2 as id, 'b' as name
