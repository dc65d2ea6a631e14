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

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
