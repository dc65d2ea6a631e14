using Parley.Hub.Fleet;
using Parley.Storage.Sqlite.Fleet;

namespace Parley.Storage.Tests.Fleet;

public sealed class SqliteInstanceStoreTests : InstanceStoreSpec, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-fleet-tests", Guid.NewGuid().ToString("N"));

    private string DatabasePath => Path.Combine(_directory, "fleet.db");

    protected override async Task<IInstanceStore> CreateStoreAsync()
    {
        Directory.CreateDirectory(_directory);
        return await SqliteInstanceStore.OpenAsync(DatabasePath);
    }

    protected override async Task<IInstanceStore> ReopenStoreAsync() => await SqliteInstanceStore.OpenAsync(DatabasePath);

    [Fact]
    public async Task The_database_file_is_private()
    {
        await using var store = await CreateStoreAsync();
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(DatabasePath));
        }
    }

    [Fact]
    public async Task A_database_from_before_terminal_instances_opens_and_reads_them_as_piped()
    {
        Directory.CreateDirectory(_directory);
        await using (var old = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DatabasePath}"))
        {
            await old.OpenAsync();
            using var command = old.CreateCommand();
            command.CommandText = """
                CREATE TABLE instances (
                    name TEXT PRIMARY KEY, command TEXT NOT NULL, args TEXT NOT NULL, cwd TEXT, env TEXT NOT NULL, port INTEGER,
                    health_url TEXT, restart TEXT NOT NULL, desired_running INTEGER NOT NULL, archived_at INTEGER,
                    created_by TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO instances VALUES ('old', '/bin/true', '[]', NULL, '{}', NULL, NULL, 'never', 1, NULL, 'owner1', 1, 1);
                """;
            await command.ExecuteNonQueryAsync();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        await using var store = await SqliteInstanceStore.OpenAsync(DatabasePath);
        var record = await store.GetAsync("old");
        Assert.NotNull(record);
        Assert.False(record.Spec.Terminal);
        Assert.True(record.DesiredRunning);
        Assert.True(await store.UpdateAsync(record with { Spec = record.Spec with { Terminal = true } }));
        Assert.True((await store.GetAsync("old"))!.Spec.Terminal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
