using Microsoft.Data.Sqlite;
using Parley.Hub.History;
using Parley.Storage.Sqlite;

namespace Parley.Storage.Tests;

public sealed class SqliteHistoryStoreTests : HistoryStoreSpec, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-storage-tests", Guid.NewGuid().ToString("N"));

    // A directory below the temp directory that does not exist yet: OpenAsync must create it.
    private string DatabasePath => Path.Combine(_directory, "data", "history.db");

    protected override async Task<IHistoryStore> CreateStoreAsync() => await SqliteHistoryStore.OpenAsync(DatabasePath);

    protected override async Task<IHistoryStore> ReopenStoreAsync() => await SqliteHistoryStore.OpenAsync(DatabasePath);

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private async Task<SqliteHistoryStore> OpenAsync(string? path = null, SqliteHistoryStoreOptions? options = null)
    {
        var store = await SqliteHistoryStore.OpenAsync(path ?? DatabasePath, options).WaitAsync(Timeout);
        return store;
    }

    // A plain connection to the database file, beside the store, as another process would have.
    private SqliteConnection OpenRaw()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static void NonQuery(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    [Fact]
    public async Task Creates_the_directory_and_a_database_in_wal_mode()
    {
        Assert.False(Directory.Exists(Path.GetDirectoryName(DatabasePath)));
        await using var store = await OpenAsync();

        Assert.True(File.Exists(DatabasePath));
        using var raw = OpenRaw();
        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode;"));
        Assert.Equal(store.Epoch, Scalar(raw, "SELECT value FROM meta WHERE key = 'epoch';"));
        Assert.Equal("2", Scalar(raw, "SELECT value FROM meta WHERE key = 'schema_version';"));
    }

    [Fact]
    public async Task Epoch_is_twelve_hex_chars_and_differs_between_fresh_databases()
    {
        await using var first = await OpenAsync(Path.Combine(_directory, "one.db"));
        await using var second = await OpenAsync(Path.Combine(_directory, "two.db"));

        Assert.Matches("^[0-9a-f]{12}$", first.Epoch);
        Assert.Matches("^[0-9a-f]{12}$", second.Epoch);
        Assert.NotEqual(first.Epoch, second.Epoch);
        Assert.Equal(first.Epoch, (await first.GetPositionAsync("room:a").AsTask().WaitAsync(Timeout)).Epoch);
    }

    [Fact]
    public async Task A_recreated_database_gets_a_new_epoch()
    {
        string oldEpoch;
        await using (var store = await OpenAsync())
        {
            oldEpoch = store.Epoch;
        }

        File.Delete(DatabasePath);
        await using var recreated = await OpenAsync();

        Assert.NotEqual(oldEpoch, recreated.Epoch);
    }

    [Fact]
    public async Task A_batch_with_an_invalid_request_stores_nothing_and_later_appends_stay_contiguous()
    {
        await using var store = await OpenAsync();
        await Append(store, Req("room:a", "m1"), Req("room:a", "m2"));

        var bad = new[] { Req("room:a", "m3", clientId: "k3"), Req("room:b", "b1"), Req("room:a", "m4") with { Body = null! } };
        await Assert.ThrowsAsync<ArgumentException>(() => Append(store, bad));

        Assert.Equal(2, (await Position(store, "room:a")).Head);
        Assert.Equal(0, (await Position(store, "room:b")).Head);
        Assert.Equal(2, (await Range(store, "room:a", 0, long.MaxValue)).Count);
        var outcomes = await Append(store, Req("room:a", "m3", clientId: "k3"), Req("room:b", "b1"));
        Assert.False(outcomes[0].Duplicate);
        Assert.Equal(3, outcomes[0].Message.Offset);
        Assert.Equal(1, outcomes[1].Message.Offset);
    }

    [Fact]
    public async Task A_batch_failing_inside_the_database_rolls_back_and_the_head_cache_recovers()
    {
        await using var store = await OpenAsync();
        await Append(store, Req("room:a", "m1"), Req("room:a", "m2"));
        using (var raw = OpenRaw())
        {
            Scalar(raw, "CREATE TRIGGER fail_boom BEFORE INSERT ON messages WHEN NEW.body = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END;");
        }

        var batch = new[] { Req("room:a", "m3"), Req("room:new", "n1", clientId: "kn"), Req("room:a", "m4", body: "boom") };
        var error = await Assert.ThrowsAsync<SqliteException>(() => Append(store, batch));
        Assert.Contains("boom", error.Message, StringComparison.Ordinal);

        Assert.Equal(2, (await Position(store, "room:a")).Head);
        Assert.Equal(0, (await Position(store, "room:new")).Head);
        Assert.Equal(["m1", "m2"], (await Range(store, "room:a", 0, long.MaxValue)).Select(m => m.Id));
        Assert.Empty(await Range(store, "room:new", 0, long.MaxValue));

        using (var raw = OpenRaw())
        {
            Scalar(raw, "DROP TRIGGER fail_boom;");
        }

        var outcomes = await Append(store, Req("room:a", "m3"), Req("room:new", "n1", clientId: "kn"), Req("room:a", "m4", body: "boom"));
        Assert.Equal([3L, 1L, 4L], outcomes.Select(o => o.Message.Offset));
        Assert.All(outcomes, o => Assert.False(o.Duplicate));
        Assert.Equal(["m1", "m2", "m3", "m4"], (await Range(store, "room:a", 0, long.MaxValue)).Select(m => m.Id));
    }

    [Fact]
    public async Task Trim_in_small_chunks_removes_everything_it_should()
    {
        await using var store = await OpenAsync(options: new SqliteHistoryStoreOptions { TrimChunkSize = 3 });
        await AppendNumbered(store, "room:a", 20);
        await AppendNumbered(store, "room:b", 8);

        var removed = await Trim(store, 5, TimeSpan.Zero, nowMs: 0);

        Assert.Equal(18, removed);
        var a = await Position(store, "room:a");
        Assert.Equal((20L, 16L, 15_000L), (a.Head, a.FirstRetained, a.LastTrimmedTimestampMs));
        var b = await Position(store, "room:b");
        Assert.Equal((8L, 4L, 3_000L), (b.Head, b.FirstRetained, b.LastTrimmedTimestampMs));
        Assert.Equal(5, (await Range(store, "room:a", 0, long.MaxValue)).Count);
    }

    [Fact]
    public async Task Trim_runs_beside_appends_without_losing_any()
    {
        await using var store = await OpenAsync(options: new SqliteHistoryStoreOptions { TrimChunkSize = 7 });
        await AppendNumbered(store, "room:a", 200);

        var appends = Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                await store.AppendBatchAsync([Req("room:a", $"late-{i}", ts: 1_000_000 + i)]).AsTask().WaitAsync(Timeout);
            }
        });
        var removed = await Trim(store, 10, TimeSpan.Zero, nowMs: 0);
        await appends.WaitAsync(Timeout);

        Assert.True(removed >= 190, $"removed {removed}");
        var position = await Position(store, "room:a");
        Assert.Equal(250, position.Head);
        var retained = await Range(store, "room:a", 0, long.MaxValue);
        Assert.Equal(position.FirstRetained, retained[0].Offset);
        Assert.Equal(Enumerable.Range((int)position.FirstRetained, (int)(250 - position.FirstRetained + 1)).Select(i => (long)i), retained.Select(m => m.Offset));
        Assert.Equal(50, retained.Count(m => m.Id.StartsWith("late-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Trim_in_chunks_smaller_than_the_number_of_topics_removes_everything_it_should()
    {
        await using var store = await OpenAsync(options: new SqliteHistoryStoreOptions { TrimChunkSize = 5 });
        for (var t = 0; t < 9; t++)
        {
            await AppendNumbered(store, $"room:t{t}", 3 + t);
        }

        var removed = await Trim(store, 2, TimeSpan.Zero, nowMs: 0);

        Assert.Equal(Enumerable.Range(0, 9).Sum(t => 1 + t), removed);
        for (var t = 0; t < 9; t++)
        {
            var position = await Position(store, $"room:t{t}");
            Assert.Equal((3L + t, 2L + t, (1L + t) * 1000), (position.Head, position.FirstRetained, position.LastTrimmedTimestampMs));
            Assert.Equal([2L + t, 3L + t], (await Range(store, $"room:t{t}", 0, long.MaxValue)).Select(m => m.Offset));
        }
    }

    [Fact]
    public async Task A_second_writer_on_the_same_file_makes_a_batch_fail_and_the_head_is_reloaded()
    {
        await using var first = await OpenAsync();
        await Append(first, Req("room:a", "m1"));
        await using (var second = await OpenAsync())
        {
            await Append(second, Req("room:a", "m2", clientId: "k2"));
        }

        // first still believes the head is 1: offset 2 is taken, and a client id must not hide that.
        var error = await Assert.ThrowsAsync<SqliteException>(() => Append(first, Req("room:a", "m3", clientId: "k3")));
        Assert.Equal(19, error.SqliteErrorCode & 0xFF); // SQLITE_CONSTRAINT (or an extended code of it)

        var retried = await Append(first, Req("room:a", "m3", clientId: "k3"), Req("room:a", "m2-again", clientId: "k2"));
        Assert.Equal(3, retried[0].Message.Offset);
        Assert.True(retried[1].Duplicate);
        Assert.Equal("m2", retried[1].Message.Id);
        Assert.Equal(["m1", "m2", "m3"], (await Range(first, "room:a", 0, long.MaxValue)).Select(m => m.Id));
    }

    // The version 1 schema, as the first release wrote it.
    private const string SchemaV1Sql = """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE topics(topic TEXT PRIMARY KEY, head INTEGER NOT NULL, first_retained INTEGER NOT NULL, last_trimmed_ts INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE messages(topic TEXT NOT NULL, "offset" INTEGER NOT NULL, id TEXT NOT NULL, ts INTEGER NOT NULL, sender TEXT NOT NULL,
            body TEXT NOT NULL, client_id TEXT, meta TEXT, PRIMARY KEY(topic, "offset")) WITHOUT ROWID;
        CREATE UNIQUE INDEX messages_topic_client_id ON messages(topic, client_id) WHERE client_id IS NOT NULL;
        CREATE INDEX messages_topic_ts ON messages(topic, ts);
        INSERT INTO meta VALUES('schema_version', '1'), ('epoch', 'abcdef012345');
        PRAGMA journal_mode = WAL;
        """;

    // room:a: offsets 1-2 trimmed, 3-6 kept with timestamps that go back; room:b: everything trimmed.
    private const string DataV1Sql = """
        INSERT INTO topics VALUES('room:a', 6, 3, 2000), ('room:b', 4, 5, 9000), ('room:c', 2, 1, 0);
        INSERT INTO messages VALUES
            ('room:a', 3, 'a3', 5000, 'alice', 'third', 'k3', '{"n":3}'),
            ('room:a', 4, 'a4', 3000, 'bob', 'fourth', NULL, NULL),
            ('room:a', 5, 'a5', 7000, 'alice', '', 'k5', NULL),
            ('room:a', 6, 'a6', 4000, 'carol', 'sixth ☃', NULL, '{}'),
            ('room:c', 1, 'c1', 100, 'dave', 'c one', 'k3', NULL),
            ('room:c', 2, 'c2', 200, 'dave', 'c two', NULL, NULL);
        """;

    private void CreateV1Database(string data)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        using var raw = OpenRaw();
        NonQuery(raw, SchemaV1Sql);
        NonQuery(raw, data);
    }

    [Fact]
    public async Task A_version_1_database_is_migrated_keeping_data_positions_and_epoch()
    {
        CreateV1Database(DataV1Sql);

        await using (var store = await OpenAsync())
        {
            Assert.Equal("abcdef012345", store.Epoch);
            Assert.Equal(new TopicPosition(6, "abcdef012345", 3, 2000), await Position(store, "room:a"));
            Assert.Equal(new TopicPosition(4, "abcdef012345", 5, 9000), await Position(store, "room:b"));
            Assert.Equal(new TopicPosition(2, "abcdef012345", 1, 0), await Position(store, "room:c"));
            Assert.Equal(
                [
                    new StoredMessage("room:a", 3, "a3", 5000, "alice", "third", "k3", """{"n":3}"""),
                    new StoredMessage("room:a", 4, "a4", 3000, "bob", "fourth", null, null),
                    new StoredMessage("room:a", 5, "a5", 7000, "alice", "", "k5", null),
                    new StoredMessage("room:a", 6, "a6", 4000, "carol", "sixth \u2603", null, "{}"),
                ],
                await Range(store, "room:a", 0, long.MaxValue));
            Assert.Empty(await Range(store, "room:b", 0, long.MaxValue));
            Assert.Equal(["a3", "a5"], (await Since(store, "room:a", 5000)).Select(m => m.Id));
            Assert.Equal(["a3", "a4", "a5", "a6"], (await Since(store, "room:a", 3000)).Select(m => m.Id));
            Assert.Equal(["a6", "a5"], (await Before(store, "room:a", long.MaxValue, limit: 2)).Select(m => m.Id));

            // Appends continue at each head, and client ids of migrated messages still deduplicate.
            var outcomes = await Append(store, Req("room:a", "a7", ts: 1000), Req("room:a", "again", clientId: "k5"), Req("room:b", "b5"), Req("room:new", "n1"));
            Assert.Equal([7L, 5L, 5L, 1L], outcomes.Select(o => o.Message.Offset));
            Assert.Equal([false, true, false, false], outcomes.Select(o => o.Duplicate));
            // a7's timestamp is below the migrated maximum: reads by time still see both sides of it.
            Assert.Equal(["a5"], (await Since(store, "room:a", 6000)).Select(m => m.Id));
            Assert.Equal(["a3", "a4", "a5", "a6", "a7"], (await Since(store, "room:a", 1000)).Select(m => m.Id));
        }

        using (var raw = OpenRaw())
        {
            Assert.Equal("2", Scalar(raw, "SELECT value FROM meta WHERE key = 'schema_version';"));
            Assert.Equal(0L, Scalar(raw, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_v1';"));
            Assert.Equal("ok", Scalar(raw, "PRAGMA integrity_check;"));
        }

        await using var reopened = await OpenAsync();
        Assert.Equal(7, (await Position(reopened, "room:a")).Head);
    }

    [Fact]
    public async Task A_version_1_database_with_a_message_of_no_topic_is_refused_and_left_unchanged()
    {
        CreateV1Database("""
            INSERT INTO topics VALUES('room:a', 1, 1, 0);
            INSERT INTO messages VALUES('room:a', 1, 'a1', 1, 'x', 'y', NULL, NULL), ('room:orphan', 1, 'o1', 1, 'x', 'y', NULL, NULL);
            """);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => OpenAsync());
        Assert.Contains("schema version 1", error.Message, StringComparison.Ordinal);

        using var raw = OpenRaw();
        Assert.Equal("1", Scalar(raw, "SELECT value FROM meta WHERE key = 'schema_version';"));
        Assert.Equal(2L, Scalar(raw, "SELECT count(*) FROM messages WHERE topic IN ('room:a', 'room:orphan');"));
    }

    [Fact]
    public async Task Opening_a_database_with_an_unknown_schema_version_fails()
    {
        await (await OpenAsync()).DisposeAsync();
        using (var raw = OpenRaw())
        {
            Scalar(raw, "UPDATE meta SET value = '99' WHERE key = 'schema_version';");
        }

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => OpenAsync());
        Assert.Contains("99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_options_are_rejected()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => OpenAsync(options: new SqliteHistoryStoreOptions { TrimChunkSize = 0 }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => OpenAsync(options: new SqliteHistoryStoreOptions { BusyTimeout = TimeSpan.FromSeconds(-1) }));
        Assert.False(File.Exists(DatabasePath));
    }

    [Fact]
    public async Task Dispose_is_idempotent_and_releases_the_file()
    {
        var store = await OpenAsync();
        await Append(store, Req("room:a", "m1"));
        Assert.Single(await Range(store, "room:a", 0, 10));

        await store.DisposeAsync();
        await store.DisposeAsync();

        // With every connection closed, SQLite checkpoints the WAL into the database and removes it.
        Assert.False(File.Exists(DatabasePath + "-wal"));
        await using var reopened = await OpenAsync();
        Assert.Equal(1, (await Position(reopened, "room:a")).Head);
    }
}
