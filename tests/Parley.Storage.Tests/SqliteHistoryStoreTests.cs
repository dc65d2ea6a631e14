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
        Assert.Equal("1", Scalar(raw, "SELECT value FROM meta WHERE key = 'schema_version';"));
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
