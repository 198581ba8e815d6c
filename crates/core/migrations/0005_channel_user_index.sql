-- GET /messages?channel_id=…&user_id=…: both filters in one index, newest first.
--
-- With only (channel_id, id) and (user_id, id), a query naming a busy channel and a user who
-- never posted there walked the channel's whole index, filtering on user_id row by row (65 to
-- 130 ms on a channel of a million rows, longer as the channel grows). With this index every
-- combination of the filters GET /messages accepts (none, channel, user, both; with or without
-- `before`) is an index range scan that stops after `limit` rows.
CREATE INDEX messages_channel_id_user_id_id_idx ON messages (channel_id, user_id, id DESC);
